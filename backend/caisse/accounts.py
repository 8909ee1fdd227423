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
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import get_by_id, is_postgresql
from caisse.errors import CaisseError, Conflict, InvalidInput, NotFound
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
    if session.execute(select(ConsoleUser.id).where(ConsoleUser.email == email)).first() is not None:  # type: ignore[arg-type]
        raise Conflict("user_exists", f"a user {email} exists already")
    user = ConsoleUser(email=email, role=role, password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    return user


def get_user(session: Session, *, email: str) -> ConsoleUser:
    user = session.execute(select(ConsoleUser).where(ConsoleUser.email == normalize_email(email))).scalar_one_or_none()  # type: ignore[arg-type]
    if user is None:
        raise NotFound("user_not_found", f"no user {email}")
    return user


def active_user(session: Session, *, email: str) -> ConsoleUser:
    """The active console account named `email`: who a staff action from the command line is done
    as. A typed name that is no account, or a disabled one, is refused."""
    user = session.execute(select(ConsoleUser).where(ConsoleUser.email == normalize_email(email))).scalar_one_or_none()  # type: ignore[arg-type]
    if user is None or not user.active:
        raise InvalidInput("not_an_active_account", f"{email!r} is not an active console account")
    return user


# Who acts when no person does: the admin API (its token is the machine's), seeding, simulations.
SYSTEM = "système"


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
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < window_start))  # type: ignore[arg-type]
    if _recent_failures(session, email=email, since=window_start) >= settings.console_login_max_failures:
        raise SignInThrottled("sign_in_throttled", "too many failed sign-ins for this address; wait and retry")
    user = session.execute(select(ConsoleUser).where(ConsoleUser.email == email)).scalar_one_or_none()  # type: ignore[arg-type]
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
    session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt.attempt_id).values(succeeded=True))  # type: ignore[arg-type]
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
        select(ConsoleSession, ConsoleUser).join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)  # type: ignore[arg-type]
        .where(ConsoleSession.token_hash == _token_hash(token))  # type: ignore[arg-type]
    ).first()
    if row is None:
        return None
    opened, user = row
    if _aware(opened.expires_at) <= (now or utcnow()) or not user.active:
        return None
    return SignedIn(user=user, session=opened)


def sign_out(session: Session, *, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _token_hash(token)))  # type: ignore[arg-type]


def set_active(session: Session, *, email: str, active: bool) -> ConsoleUser:
    """Disable (or enable again) an account; disabling also ends its open sessions."""
    user = get_user(session, email=email)
    session.execute(update(ConsoleUser).where(ConsoleUser.id == user.id).values(active=active))  # type: ignore[arg-type]
    if not active:
        session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))  # type: ignore[arg-type]
    session.refresh(user)
    return user


def _recent_failures(session: Session, *, email: str, since: datetime) -> int:
    last_success = session.execute(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.email == email, LoginAttempt.succeeded.is_(True))  # type: ignore[arg-type,union-attr]
    ).scalar_one()
    if last_success is not None:
        since = max(since, _aware(last_success))
    return session.execute(
        select(func.count()).select_from(LoginAttempt)
        .where(LoginAttempt.email == email, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= since)  # type: ignore[arg-type,union-attr]
    ).scalar_one()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidInput("invalid_password", f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters")


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC here."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
