"""The typed errors Berth's domain raises; the web layer maps each to a status."""

from __future__ import annotations


class BerthError(Exception):
    """Base of every error Berth's domain raises on purpose."""

    #: What a user may be shown; never holds secrets or tracebacks.
    @property
    def message(self) -> str:
        return str(self)


class SettingError(BerthError):
    """A setting is missing or malformed; the message names it."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name}: {problem}")
        self.name = name


class NotFound(BerthError):
    """What was asked for does not exist."""


class Unauthorized(BerthError):
    """An upstream refused Berth's credentials."""


class UpstreamUnavailable(BerthError):
    """An upstream (registry, directory, engine) could not be reached or timed out."""

    def __init__(self, message: str, *, upstream: str = "upstream", timeout: bool = False):
        super().__init__(message)
        self.upstream = upstream
        self.timeout = timeout


class BadUpstreamResponse(BerthError):
    """An upstream answered, but with something Berth cannot use."""

    def __init__(self, message: str, *, upstream: str = "upstream"):
        super().__init__(message)
        self.upstream = upstream


class InvalidCredentials(BerthError):
    """The username or password is wrong; deliberately vague about which."""

    def __init__(self, message: str = "Invalid username or password."):
        super().__init__(message)


class NotPermitted(InvalidCredentials):
    """The password was right, but the account is not in a group allowed to use Berth."""

    def __init__(self, message: str = "Your directory account is not allowed to use Berth; ask an admin."):
        super().__init__(message)


class DirectoryUnavailable(UpstreamUnavailable):
    """The directory is down or refuses Berth's service account."""

    def __init__(self, message: str = "Directory unreachable; try again shortly."):
        super().__init__(message, upstream="directory")


class LoginThrottled(BerthError):
    """Too many failed logins recently for this username or address."""

    def __init__(self, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed logins. Try again in about {minutes} minute{'s' if minutes != 1 else ''}.")
        self.retry_after = retry_after


class Conflict(BerthError):
    """The request clashes with the current state (e.g. a job of that kind runs)."""


class DeleteUnsupported(Conflict):
    """The registry refuses deletes (``storage.delete`` off, or read-only during garbage collection)."""


class JobFailed(BerthError):
    """A job step failed in a way its own message explains (no traceback needed)."""


class ConvergenceFailed(JobFailed):
    """A Swarm service did not reach a stable state running its current spec."""


class PageSizeRefused(BerthError):
    """The registry refused ``n=`` (its maximum is lower); the caller retries with a smaller page."""
