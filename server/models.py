"""Every ORM model, imported in one place so metadata (and Alembic) sees all tables."""

from server.auth.models import ApiKey, AuditEvent, ServerSecret, Tenant
from server.db import Base
from server.profiles.models import EndUser, ProfileVersion
from server.usage.models import UsageHour

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "EndUser",
    "ProfileVersion",
    "ServerSecret",
    "Tenant",
    "UsageHour",
]
