"""Every ORM model, imported in one place so metadata (and Alembic) sees all tables."""

from server.auth.models import ApiKey, Tenant
from server.db import Base
from server.profiles.models import EndUser, ProfileVersion

__all__ = ["ApiKey", "Base", "EndUser", "ProfileVersion", "Tenant"]
