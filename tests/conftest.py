"""Shared test setup: 4 host devices so data-parallel code can be tested on CPU."""

import os

# LLVM optimisation level 0: the test programs compile 3-7x faster (the tiny
# model's jitted init: 34 s -> 5 s on 2 cores) and run on tiny inputs, where the
# speed of the generated code does not matter. Library calls (convolutions, GEMMs)
# are unaffected. XLA:CPU's elemental emitters instead of its fusion emitters:
# the tiny model's train step compiles ~3x faster (3.8 s against 10.9 s alone
# on 2 cores, 6.6 s against 18.5 s beside other work), and its steps run as
# fast. Benchmarks and real runs never set these.
# Appended to any XLA_FLAGS already set (a preset value must not leave the
# data-parallel tests comparing one device with one).
_FLAGS = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_force_host_platform_device_count=4",
              "--xla_backend_optimization_level=0",
              "--xla_cpu_use_fusion_emitters=false"):
  if _flag.split("=")[0] not in _FLAGS:
    _FLAGS += " " + _flag
os.environ["XLA_FLAGS"] = _FLAGS.strip()
NUM_TEST_DEVICES = 4
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling the train step takes tens of seconds on a 2-core CPU; the end-to-end
# tests compile the same programs in several processes (the resume test runs the
# CLI twice), so they share one persistent compilation cache for the session.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  import atexit  # noqa: E402  pylint: disable=g-import-not-at-top
  import shutil  # noqa: E402  pylint: disable=g-import-not-at-top
  import tempfile  # noqa: E402  pylint: disable=g-import-not-at-top
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="sfae_jit_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

import fcntl  # noqa: E402
import pickle  # noqa: E402

import pytest  # noqa: E402


def _once_per_session(tmp_path_factory, name, make):
  """`make(folder)`, made once for the whole session: pytest-xdist's workers
  share one result (the first to arrive makes it under a lock, the others wait
  for it and read it), where each would otherwise train or build its own copy.
  The result must pickle; what `make` writes in `folder` is shared, so tests
  copy it before changing it."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # the session's folder, above each worker's own
  folder, done = base / name, base / f"{name}.pickle"
  with open(base / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      folder.mkdir(exist_ok=True)
      done.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(done.read_bytes())


@pytest.fixture(scope="session")
def synthetic_tfds(tmp_path_factory):
  """A small synthetic BP4D (one subject per part, 2 tasks x 10 frames), built
  with the real builder: returns the TFDS data_dir."""
  from tfds_bp4d import prepare  # pylint: disable=g-import-not-at-top
  from tfds_bp4d.synthetic import bp4d as synthetic  # pylint: disable=g-import-not-at-top

  def make(root):
    manual, data_dir = str(root / "manual"), str(root / "tfds")
    synthetic.generate(manual, subjects=3, tasks=2, frames=10, size_wh=(160, 160),
                       seed=11, progress=False)
    prepare.build(manual, data_dir, "bp4d49")
    return data_dir
  return _once_per_session(tmp_path_factory, "synthetic_bp4d", make)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def faces_dir():
  """../shared/faces (or $SFAE_FACES_DIR): real photos and videos. Absent only
  outside CI; under CI its absence is a failure, not a skip."""
  path = os.environ.get("SFAE_FACES_DIR") or os.path.join(ROOT, "..", "shared",
                                                          "faces")
  if not os.path.isdir(path):
    if os.environ.get("CI"):
      pytest.fail(f"CI must provide the real face media: {path} is missing.")
    pytest.skip(f"real face media not found at {path} (set SFAE_FACES_DIR)")
  return path


@pytest.fixture(scope="session")
def trained_run(synthetic_tfds, tmp_path_factory):
  """A 6-step configs/test.py run on the small synthetic BP4D: (workdir, result)."""
  from configs import test as test_config  # pylint: disable=g-import-not-at-top
  from sfae_jax import train  # pylint: disable=g-import-not-at-top

  def make(root):
    workdir = str(root / "run")
    return workdir, train.train_and_evaluate(test_config.with_data(synthetic_tfds),
                                             workdir)
  return _once_per_session(tmp_path_factory, "trained", make)


@pytest.fixture(scope="session")
def synthetic_disfa_tfds(tmp_path_factory):
  """A small synthetic DISFA (one subject per part, 12 frames each; one landmark
  file missing), built with the real DISFA builder: returns the TFDS data_dir."""
  from tfds_bp4d import prepare  # pylint: disable=g-import-not-at-top
  from tfds_bp4d.synthetic import disfa  # pylint: disable=g-import-not-at-top

  def make(root):
    manual, data_dir = str(root / "manual"), str(root / "tfds")
    disfa.generate(manual, subjects=3, frames=12, size_wh=(160, 160), seed=4,
                   progress=False)
    prepare.build(manual, data_dir, "disfa49", "disfa")
    return data_dir
  return _once_per_session(tmp_path_factory, "synthetic_disfa", make)


@pytest.fixture
def small_disk(tmp_path):
  """`small_disk(size)`: a folder on a tmpfs of that size ('400k'), and a
  function that resizes it, as freeing space does. Mounting needs root, as CI
  has; the mount goes when the test ends."""
  import subprocess  # pylint: disable=g-import-not-at-top
  mounts = []

  def make(size: str):
    mount = tmp_path / f"disk{len(mounts)}"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                        str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
      if os.environ.get("CI"):
        pytest.fail(f"CI runs as root and must mount a tmpfs: {r.stderr.strip()}")
      pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
    mounts.append(mount)
    def resize(new_size: str):
      subprocess.run(["mount", "-o", f"remount,size={new_size}", str(mount)],
                     check=True)
    return mount, resize

  yield make
  for mount in mounts:
    subprocess.run(["umount", "-l", str(mount)], check=False)
