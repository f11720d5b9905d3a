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


class AccountUnusable(NotPermitted):
    """The directory refused a login for a reason of the account's, not the password's.

    Active Directory says why only after the right password (``data 533`` and so on in the
    bind error), so naming the reason tells a guesser nothing. ``code`` is AD's code.
    """

    reason = "Your directory account cannot log in right now; ask your directory admin."

    def __init__(self, code: str = ""):
        super().__init__(self.reason)
        self.code = code


class AccountDisabled(AccountUnusable):
    """AD ``data 533``: the account is disabled."""

    reason = "Your directory account is disabled. Ask your directory admin to enable it."


class AccountExpired(AccountUnusable):
    """AD ``data 701``: the account's end date has passed."""

    reason = "Your directory account has expired. Ask your directory admin to extend it."


class PasswordMustChange(AccountUnusable):
    """AD ``data 773``: the password must be changed at next logon."""

    reason = (
        "Your password must be changed before you can log in. Change it (on Windows: Ctrl+Alt+Del,"
        " Change a password), then log in with the new one."
    )


class PasswordExpired(AccountUnusable):
    """AD ``data 532``: the password is past its maximum age."""

    reason = "Your password has expired. Change it (on Windows: Ctrl+Alt+Del, Change a password), then log in."


class AccountLocked(AccountUnusable):
    """AD ``data 775`` (or its lockout flag): too many wrong passwords; Berth will not bind."""

    reason = (
        "Your directory account is locked after too many wrong passwords. It unlocks by itself after"
        " the directory's lockout time, or ask your directory admin to unlock it."
    )


class DirectoryUnavailable(UpstreamUnavailable):
    """The directory is down or refuses Berth's service account."""

    def __init__(self, message: str = "Directory unreachable; try again shortly."):
        super().__init__(message, upstream="directory")


class DirectoryMisconfigured(DirectoryUnavailable):
    """The directory answers, but Berth's settings for it are wrong (TLS, service account, search).

    Users see a generic line; ``detail`` (for logs, /health and ``check-config``) says what
    is wrong and which setting fixes it. It never holds a password.
    """

    def __init__(self, detail: str):
        super().__init__("Login is not possible: Berth's directory settings are wrong (an admin sees why on /health).")
        self.detail = detail


class LoginThrottled(BerthError):
    """Too many failed logins recently for this username or address."""

    def __init__(self, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"Too many failed logins. Try again in about {minutes} minute{'s' if minutes != 1 else ''}.")
        self.retry_after = retry_after


class LockoutNear(LoginThrottled):
    """One more wrong password would lock the account in the directory (AD): Berth does not bind."""


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


class BadRequest(BerthError):
    """What a client sent cannot be accepted as it is (400, or 413/415 for size and type)."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.status = status
