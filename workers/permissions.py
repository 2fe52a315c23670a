"""Who may run operator-only job types (cleanups, webhook processing): admins and the system user.

Any user can submit any type through the API; these bodies refuse to act for anyone else.
"""

from __future__ import annotations

from shared.errors import PermanentError
from shared.jobtypes import JobContext
from shared.models import User
from shared.system import SYSTEM_EMAIL


def require_operator(ctx: JobContext) -> None:
    """Raise ``PermanentError`` unless the job's owner is an admin or the system user."""
    with ctx.session() as session:
        user = session.get(User, ctx.user_id)
        allowed = user is not None and (user.is_admin or user.email == SYSTEM_EMAIL)
    if not allowed:
        raise PermanentError("Only operators (admins) may run this job type.")
