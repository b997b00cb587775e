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
