"""One exception type for every bad input, with a message that says what to do.

Every error the user can cause is a `BertHubError` whose message has three parts:
what was expected, what was received, and how to fix it. The CLI prints it as one
line `error: ...` and exits non-zero; library callers can catch the type.
"""


class BertHubError(ValueError):
  """A bad input: the message says what was expected, received, and the fix."""

  def __init__(self, what: str, *, expected: str, received: str, fix: str):
    self.what = what
    self.expected = expected
    self.received = received
    self.fix = fix
    super().__init__(
        f"{what}: expected {expected}; received {received}; fix: {fix}")


class CheckpointMismatchError(BertHubError):
  """The checkpoint's weights do not fit the encoder; lists every problem at once."""

  def __init__(self, source: str, *, missing=(), unused=(), mismatched=(),
               fix: str):
    self.missing = list(missing)
    self.unused = list(unused)
    self.mismatched = list(mismatched)  # (name, expected_shape, received_shape)
    parts = []
    if self.missing:
      parts.append(f"{len(self.missing)} missing: " + ", ".join(self.missing))
    if self.unused:
      parts.append(f"{len(self.unused)} unused: " + ", ".join(self.unused))
    if self.mismatched:
      parts.append(f"{len(self.mismatched)} of the wrong shape: " + ", ".join(
          f"{n} (expected {list(e)}, received {list(r)})"
          for n, e, r in self.mismatched))
    super().__init__(
        f"checkpoint {source} does not fit the encoder",
        expected="every encoder weight exactly once with the configured shape",
        received="; ".join(parts),
        fix=fix)


class ExportVerificationError(RuntimeError):
  """The reloaded export does not compute what the in-memory model computes.

  Not the user's input but a defect: the CLI reports it in one line, exit 1.
  """
