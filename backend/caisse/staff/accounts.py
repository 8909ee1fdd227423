"""Console accounts: users and roles, passwords, sign-in with a rate limit, sessions.

Passwords are hashed with argon2id (pwdlib's recommended hasher: memory-hard, so a stolen table
costs an attacker memory as well as time per guess). Failed sign-ins are counted in the database,
per e-mail address, so the limit holds across server processes and restarts: after
`console_login_max_failures` failures within `console_login_window_s`, sign-in for that address
is refused until the window has passed, even with the right password. A success forgets earlier
failures. A sign-in is three steps (begin_sign_in, password_matches, finish_sign_in) so that the
slow password check runs outside any database transaction: the caller commits after the first and
after the last. Sessions live in the database (caisse.models.ConsoleSession): signing out deletes the
row, so a copied cookie stops working at once.

Nothing here commits: the caller does (a refused sign-in must still commit its attempt).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pwdlib import PasswordHash
from sqlalchemy import delete, func, select, text, update
from sqlmodel import Session, col

from caisse import audit
from caisse.config import Settings
from caisse.db import get_by_id, is_postgresql
from caisse.errors import CaisseError, Conflict, Forbidden, InvalidInput, NotFound
from caisse.models import ConsoleSession, ConsoleUser, LoginAttempt, Role, utcnow

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 200  # argon2 takes any length; this bounds the work a request can ask for
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHash.recommended()
# Verified against when the address is unknown, so a refusal takes as long either way and does
# not tell which addresses have accounts.
_DUMMY_HASH = _hasher.hash("not a password of anyone")
# argon2 as recommended takes 64 MiB a hash: a bound on hashes at once bounds the memory a sign-in
# flood can take (4 x 64 MiB), whatever the server's thread pool.
MAX_CONCURRENT_HASHES = 4
_hashing = threading.BoundedSemaphore(MAX_CONCURRENT_HASHES)


class SignInRefused(CaisseError):
    status_code = 401


class SignInThrottled(CaisseError):
    status_code = 429


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: ConsoleUser
    session: ConsoleSession


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(session: Session, *, email: str, password: str, role: str) -> ConsoleUser:
    email = normalize_email(email)
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput("invalid_email", "the e-mail address is not well formed")
    if role not in Role.__members__.values():
        raise InvalidInput("invalid_role", f"role must be one of {', '.join(Role)}")
    _check_password(password)
    if session.execute(select(col(ConsoleUser.id)).where(col(ConsoleUser.email) == email)).first() is not None:
        raise Conflict("user_exists", f"a user {email} exists already")
    user = ConsoleUser(email=email, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def add_account(session: Session, *, email: str, password: str, role: str, by: str | None,
                os_user: str | None = None) -> ConsoleUser:
    """A new console account, created by the active administrator `by`. `by=None` only while
    the caisse has no active administrator: the first one, made on the server (`caisse user add`).
    The password is never logged: the audit keeps the address and the role."""
    if role not in Role.__members__.values():
        raise InvalidInput("invalid_role", f"role must be one of {', '.join(Role)}")
    first = by is None and role == Role.ADMIN and not _has_active_admin(session)
    actor = "installation" if first else _acting_admin(session, by).email
    user = create_user(session, email=email, password=password, role=role)
    audit.record(session, actor=actor, action="user.create", subject=f"user:{user.email}",
                 detail=_with_os_user({"role": role}, os_user))
    return user


def set_active(session: Session, *, email: str, active: bool, by: str, os_user: str | None = None) -> ConsoleUser:
    """Disable (or enable again) an account, as the active administrator `by`; disabling also
    ends its open sessions. The last active administrator cannot be disabled (nobody could
    manage accounts any more), and an account already in that state is refused: nothing twice."""
    actor = _acting_admin(session, by).email
    user = get_user(session, email=email)
    if user.active == active:
        raise Conflict("user_already_active" if active else "user_already_disabled", f"{user.email} is already in that state")
    if not active and user.role == Role.ADMIN and _active_admins(session) <= 1:
        raise Conflict("last_admin", "the last active administrator cannot be disabled")
    session.execute(update(ConsoleUser).where(col(ConsoleUser.id) == user.id).values(active=active))
    if not active:
        session.execute(delete(ConsoleSession).where(col(ConsoleSession.user_id) == user.id))
    audit.record(session, actor=actor, action="user.enable" if active else "user.disable", subject=f"user:{user.email}",
                 detail=_with_os_user({"role": user.role}, os_user))
    session.refresh(user)
    return user


# A temporary password people can read aloud and type: no 0/o, 1/l/i; 16 characters of 31 (79 bits).
_READABLE = "abcdefghjkmnpqrstuvwxyz23456789"


def reset_password(session: Session, *, email: str, by: str, os_user: str | None = None,
                   stamp: str | None = None) -> str:
    """Give the account a new random password and end its sessions; returns that password, to be
    shown once to the administrator `by` and never stored or logged. With `stamp` (password_stamp
    of the page the administrator saw), a second click finds the password changed and is refused."""
    password = new_password()
    password_hash = _slow_hash(password)  # before the first statement: SQLite's write lock is not held meanwhile
    actor = _acting_admin(session, by).email
    user = get_user(session, email=email)
    if stamp is not None and not secrets.compare_digest(stamp, password_stamp(user)):
        raise Conflict("password_already_reset", f"the password of {user.email} changed since the page was shown")
    session.execute(update(ConsoleUser).where(col(ConsoleUser.id) == user.id).values(password_hash=password_hash))
    session.execute(delete(ConsoleSession).where(col(ConsoleSession.user_id) == user.id))
    audit.record(session, actor=actor, action="user.reset_password", subject=f"user:{user.email}",
                 detail=_with_os_user({"sessions_ended": True}, os_user))
    session.refresh(user)
    return password


def new_password() -> str:
    """A random password to hand over once (a new account, a reset), e.g. `k7mq-3xta-9pwe-hn4c`."""
    return "-".join("".join(secrets.choice(_READABLE) for _ in range(4)) for _ in range(4))


def change_password(session: Session, *, email: str, current: str, new: str) -> ConsoleUser:
    """The signed-in person replaces their own password (after a reset, say), giving the current
    one. Audited with the account as actor; the passwords never are. (The current one is checked
    inside the caller's transaction: a rare action of a signed-in person, bounded like sign-ins.)"""
    _check_password(new)
    if current == new:
        raise InvalidInput("same_password", "the new password is the current one")
    new_hash = _slow_hash(new)
    user = get_user(session, email=email)
    with _hashing:
        if not _hasher.verify(current[:MAX_PASSWORD_CHARS], user.password_hash):
            raise InvalidInput("wrong_password", "the current password is not this one")
    session.execute(update(ConsoleUser).where(col(ConsoleUser.id) == user.id).values(password_hash=new_hash))
    audit.record(session, actor=user.email, action="user.change_password", subject=f"user:{user.email}")
    session.refresh(user)
    return user


def _slow_hash(password: str) -> str:
    with _hashing:
        return _hasher.hash(password)


def password_stamp(user: ConsoleUser) -> str:
    """Changes whenever the password does; tells nothing about it (a digest of its salted hash)."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def _acting_admin(session: Session, by: str | None) -> ConsoleUser:
    if by is None:
        raise InvalidInput("admin_by_required", "name your console account (an active administrator) with --by")
    user = active_user(session, email=by)
    if user.role != Role.ADMIN:
        raise Forbidden("admin_required", f"{user.email} is not an administrator")
    return user


def _active_admins(session: Session) -> int:
    return session.execute(select(func.count()).select_from(ConsoleUser).where(
        col(ConsoleUser.role) == str(Role.ADMIN), col(ConsoleUser.active).is_(True))).scalar_one()


def _has_active_admin(session: Session) -> bool:
    return _active_admins(session) > 0


def _with_os_user(detail: dict[str, object], os_user: str | None) -> dict[str, object]:
    return {**detail, "os_user": os_user} if os_user else detail


def get_user(session: Session, *, email: str) -> ConsoleUser:
    user = session.execute(select(ConsoleUser).where(col(ConsoleUser.email) == normalize_email(email))).scalar_one_or_none()
    if user is None:
        raise NotFound("user_not_found", f"no user {email}")
    return user


def active_user(session: Session, *, email: str) -> ConsoleUser:
    """The active console account named `email`: who a staff action from the command line is done
    as. A typed name that is no account, or a disabled one, is refused."""
    user = session.execute(select(ConsoleUser).where(col(ConsoleUser.email) == normalize_email(email))).scalar_one_or_none()
    if user is None or not user.active:
        raise InvalidInput("not_an_active_account", f"{email!r} is not an active console account")
    return user


# Who acts when no person does: the admin API (its token is the machine's), seeding, simulations.
SYSTEM = "système"
AUTOMATIC = "automatique"  # the nightly timer, named in settlement runs and the audit
API = "api-admin"  # the admin API: its token is the machine's (provisioning)


def staff_actor(session: Session, *, by: str, os_user: str | None = None) -> str:
    """Who a staff action is audited as: the active console account `by` (its address as stored),
    or SYSTEM for a caller inside the server process. SYSTEM is refused from the command line
    (`os_user` given): a person there names their own account."""
    if by == SYSTEM and os_user is None:
        return SYSTEM
    return active_user(session, email=by).email


def same_person(first: str, second: str) -> bool:
    """Two names of one console account (e-mail addresses compare without case or spaces)."""
    return normalize_email(first) == normalize_email(second)


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """A sign-in under way: counted against its address's limit, its password not yet checked.
    Carries what password_matches needs, so that step touches no database."""

    attempt_id: int
    user_id: int | None
    password_hash: str  # the user's, or a dummy one for an unknown address
    at: datetime


def begin_sign_in(session: Session, *, email: str, settings: Settings, now: datetime | None = None) -> SignInAttempt:
    """First step of a sign-in, a short write transaction: raise SignInThrottled when the address
    failed too often, else count this attempt as a failure until finish_sign_in says otherwise.

    The count and the insert are one atomic step per address (PostgreSQL: an advisory lock on the
    address for the transaction; SQLite: its single writer), so attempts arriving together pass
    the limit no more often than it allows. The caller commits before checking the password."""
    now = now or utcnow()
    email = normalize_email(email)[:254]
    if is_postgresql(session):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"sign-in:{email}"})
    window_start = now - timedelta(seconds=settings.console_login_window_s)
    session.execute(delete(LoginAttempt).where(col(LoginAttempt.at) < window_start))
    if _recent_failures(session, email=email, since=window_start) >= settings.console_login_max_failures:
        raise SignInThrottled("sign_in_throttled", "too many failed sign-ins for this address; wait and retry")
    user = session.execute(select(ConsoleUser).where(col(ConsoleUser.email) == email)).scalar_one_or_none()
    attempt = LoginAttempt(email=email, succeeded=False, at=now)
    session.add(attempt)
    session.flush()
    assert attempt.id is not None
    return SignInAttempt(attempt_id=attempt.id, user_id=user.id if user else None,
                         password_hash=user.password_hash if user else _DUMMY_HASH, at=now)


def password_matches(attempt: SignInAttempt, password: str) -> bool:
    """The slow step (argon2, memory-hard), run between the two transactions: never while the
    database's write lock is held. At most MAX_CONCURRENT_HASHES run at once per process, so a
    flood of sign-ins queues instead of taking the server's memory."""
    with _hashing:
        return _hasher.verify(password[:MAX_PASSWORD_CHARS], attempt.password_hash)


def finish_sign_in(session: Session, *, attempt: SignInAttempt, matches: bool, settings: Settings) -> tuple[str, SignedIn]:
    """Last step: open a session (returns the cookie token) or raise SignInRefused, the same
    answer for a wrong password, an unknown address and a disabled account."""
    user = None if attempt.user_id is None else get_by_id(session, ConsoleUser, attempt.user_id)
    if not (matches and user is not None and user.active):
        raise SignInRefused("sign_in_refused", "wrong e-mail address or password")
    session.execute(update(LoginAttempt).where(col(LoginAttempt.id) == attempt.attempt_id).values(succeeded=True))
    user.last_login_at = attempt.at
    token = secrets.token_urlsafe(32)
    opened = ConsoleSession(token_hash=_token_hash(token), user_id=user.id or 0, csrf_token=secrets.token_urlsafe(32),
                            created_at=attempt.at,
                            expires_at=attempt.at + timedelta(seconds=settings.console_session_lifetime_s))
    session.add(opened)
    session.flush()
    return token, SignedIn(user=user, session=opened)


def signed_in(session: Session, *, token: str, now: datetime | None = None) -> SignedIn | None:
    """The session and user behind a cookie token, or None if unknown, expired or disabled."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(ConsoleSession, ConsoleUser).join(ConsoleUser, col(ConsoleUser.id) == col(ConsoleSession.user_id))
        .where(col(ConsoleSession.token_hash) == _token_hash(token))
    ).first()
    if row is None:
        return None
    opened, user = row
    if _aware(opened.expires_at) <= (now or utcnow()) or not user.active:
        return None
    return SignedIn(user=user, session=opened)


def sign_out(session: Session, *, token: str) -> None:
    session.execute(delete(ConsoleSession).where(col(ConsoleSession.token_hash) == _token_hash(token)))


def _recent_failures(session: Session, *, email: str, since: datetime) -> int:
    last_success = session.execute(
        select(func.max(col(LoginAttempt.at))).where(col(LoginAttempt.email) == email, col(LoginAttempt.succeeded).is_(True))
    ).scalar_one()
    if last_success is not None:
        since = max(since, _aware(last_success))
    return session.execute(
        select(func.count()).select_from(LoginAttempt)
        .where(col(LoginAttempt.email) == email, col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.at) >= since)
    ).scalar_one()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput("invalid_password", f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC here."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def audited_actor(session: Session, *, by: str, os_user: str | None) -> str:
    """Who the audit names (staff_actor), the admin API's token included."""
    return API if by == API and os_user is None else staff_actor(session, by=by, os_user=os_user)


def check_actor(session: Session, *, by: str) -> str:
    """`by` names the timer (`automatique`) or an active console account: a typed name that is no
    account is refused, so "prepared by" and "approved by" always name someone who can sign in."""
    if by == AUTOMATIC:
        return by
    return active_user(session, email=by).email
