"""The reference the streamed predict is held to: the frame-by-frame loop."""

import numpy as np

from sfae_jax.face import align, media, tracking
from sfae_jax.predict import rows


def sequential_rows(det, path, every=1):
  """The frame-by-frame loop predict ran before it was streamed: decode, detect
  (or refit between detections), track, align, then the model on all faces."""
  tracker, out, faces, found = tracking.IoUTracker(), [], [], []
  video = media.is_video(path)
  refit = getattr(det.backend, "refit", None) if video else None
  detect = (getattr(det.backend, "detect_video", det.backend.detect) if video
            else det.backend.detect)
  for k, frame in enumerate(media.frames(path, every)):
    if frame.corrupt:
      found = []
      tracker.update([])
      out.append(rows.row(path, frame, -1, None, None, decode_error=1))
      continue
    if refit is not None and found and k % det.detect_every:
      found = refit(frame.rgb, found)
    else:
      found = detect(frame.rgb)
    ids = tracker.update([f.box for f in found])
    if not found:
      out.append(rows.row(path, frame, -1, None, None))
    for face_id, face in zip(ids, found):
      try:
        aligned = align.align_face(frame.rgb, face.landmarks).image
      except ValueError:
        out.append(rows.row(path, frame, face_id, face, None))
        continue
      out.append(rows.row(path, frame, face_id, face, len(faces)))
      faces.append(aligned)
  outputs = (det.predict_aligned(np.stack(faces)) if faces
             else np.zeros((0, det.model.num_outputs)))
  return rows.table(out, outputs, det.au_ids, det.threshold, det.intensity_au_ids)
