"""Repository-wide pytest hooks."""


def pytest_collection_modifyitems(config, items):
  # tf.test.TestCase (base of TFDS's DatasetBuilderTestCase) carries a deprecated
  # `test_session` helper that pytest collects as a test and that always skips
  # itself: it is not a test, so it is deselected rather than reported as skipped.
  keep, drop = [], []
  for item in items:
    fn = getattr(item, "function", None)
    is_tf_helper = (item.name == "test_session" and fn is not None
                    and fn.__module__.startswith("tensorflow"))
    (drop if is_tf_helper else keep).append(item)
  if drop:
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
  # The longest files first (measured in CI: 1-3 minutes a test), in their own
  # order: on pytest-xdist workers they then start at once instead of ending the
  # run on one worker while the other waits.
  first = ("tests/test_multiprocess.py", "tests/tools/test_aot.py",
           "tests/training/test_train_step.py", "tests/tools/test_ablate.py",
           "tests/models/test_conv.py",
           "tests/predict/test_stream.py")
  items.sort(key=lambda item: next(
      (i for i, f in enumerate(first) if item.nodeid.startswith(f)), len(first)))
