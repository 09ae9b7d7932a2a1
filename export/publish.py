"""`DIR/<version>/` appears complete or not at all.

An export is written into a staging directory beside its target,
`DIR/.<version>.partial-<pid>-<random>` (TF Serving and `hub.load` ignore names
that are not numbers), verified there, then renamed into place: `rename(2)` is
atomic, so a process killed at any point leaves no `DIR/<version>`, and other
versions in DIR are never touched. A staging directory left by a killed process
is removed by the next export into DIR once its process is gone.

An existing `DIR/<version>` is never replaced unless `overwrite=True`; then it is
set aside as `DIR/.<version>.old-<pid>-<random>` until the new one is in place
(restored by the next export if the process died in between). Two
exports racing for the same version both stage; the first rename wins and the
second fails with a clear error (renaming onto a non-empty directory fails).
A full disk (ENOSPC, EDQUOT) or a file size limit (EFBIG), whether Python or
TensorFlow's writers meet it, removes the staging directory and raises one
BertHubError.
"""
import contextlib
import errno
import os
import re
import shutil
import uuid

from bert_hub.errors import BertHubError

_STAGING = re.compile(r"^\.(\d+)\.(partial|old)-(\d+)-[0-9a-f]+$")


def version_dir(output_dir: str, version: int) -> str:
  return os.path.join(output_dir, str(version))


def check_target(output_dir: str, version: int, *, overwrite: bool) -> str:
  """Validates DIR before any work is done; returns DIR/<version>."""
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise BertHubError(
        "output is not a directory", expected="a directory to hold <version>/ folders",
        received=f"{output_dir} (a file)", fix="pass another --output")
  try:
    os.makedirs(output_dir, exist_ok=True)
  except OSError as e:
    raise BertHubError(
        "output not writable", expected="a directory you can create and write",
        received=f"{output_dir}: {e.strerror}", fix="pass another --output") from None
  if not os.access(output_dir, os.W_OK | os.X_OK):
    read_only = os.statvfs(output_dir).f_flag & os.ST_RDONLY
    raise BertHubError(
        "output not writable", expected="a writable directory",
        received=f"{output_dir} ({'on a read-only file system' if read_only else 'permission denied'})",
        fix="pass another --output")
  # First put back a version that a killed --overwrite had set aside, so that
  # the check below sees what DIR really holds.
  remove_stale_staging(output_dir)
  target = version_dir(output_dir, version)
  if os.path.exists(target) and not overwrite:
    raise BertHubError(
        "version exists", expected=f"no {target} (exports never overwrite)",
        received=f"{target} already there",
        fix="export another --version, choose another --output, or pass --overwrite")
  return target


@contextlib.contextmanager
def staged(output_dir: str, version: int, *, overwrite: bool = False):
  """Yields a staging path; on a clean exit it becomes DIR/<version>.

  with staged(DIR, 3) as path:
    write everything into path, verify it   # an exception discards path
  """
  target = check_target(output_dir, version, overwrite=overwrite)
  remove_stale_staging(output_dir)
  stage = os.path.join(output_dir, f".{version}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
  try:
    yield stage
    _move_into_place(stage, target, overwrite=overwrite)
  except BaseException as e:
    shutil.rmtree(stage, ignore_errors=True)
    code = _disk_full_errno(e)
    if code is not None:
      limit = code == errno.EFBIG  # RLIMIT_FSIZE (ulimit -f), or the fs's largest file
      detail = str(e).splitlines()[0] if str(e) else type(e).__name__
      detail = detail if len(detail) <= 300 else "..." + detail[-300:]  # keep the file
      raise BertHubError(
          "file size limit" if limit else "disk full",
          expected=("files of any size (no ulimit -f)" if limit
                    else f"free space for the export in {output_dir}"),
          received=f"{os.strerror(code)} while writing: {detail}",
          fix=("raise the limit (ulimit -f unlimited)" if limit else "free space")
          + " or pass another --output; nothing was left behind") from None
    raise


# Full disks reach us as OSError from Python and as an OpError (ResourceExhausted,
# Unknown, ...) from TensorFlow's file writers, whose message carries strerror().
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _disk_full_errno(e: BaseException):
  """ENOSPC, EDQUOT or EFBIG if `e` is a write failing for want of space, else None."""
  if isinstance(e, OSError):
    return e.errno if e.errno in _DISK_FULL else None
  if type(e).__module__.startswith("tensorflow"):
    return next((c for c in _DISK_FULL if os.strerror(c) in str(e)), None)
  return None


def _move_into_place(stage: str, target: str, *, overwrite: bool) -> None:
  old = None
  if overwrite and os.path.exists(target):
    old = stage.replace(".partial-", ".old-")
    os.rename(target, old)
  try:
    os.rename(stage, target)
  except OSError as e:
    if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
      raise BertHubError(
          "version exists", expected=f"no {target} when this export finished",
          received=f"{target} created by another export meanwhile",
          fix="export another --version, or pass --overwrite") from None
    if old:
      os.rename(old, target)  # put the previous export back
    raise
  if old:
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_staging(output_dir: str) -> None:
  """Cleans up after killed exports: partial ones go; a replaced one comes back.

  An `.old-` directory is a previous export set aside by --overwrite; if its
  process died before the new one took its place, it is renamed back.
  """
  for name in os.listdir(output_dir):
    m = _STAGING.match(name)
    if not m or _alive(int(m.group(3))):
      continue
    path = os.path.join(output_dir, name)
    target = version_dir(output_dir, int(m.group(1)))
    if m.group(2) == "old" and not os.path.exists(target):
      os.rename(path, target)
    else:
      shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True
