"""Manager database: SQLAlchemy 2 models (migrations in bai.manager.db.migrations)."""

from bai.manager.db import audit, compute, identity, policies, storage
from bai.manager.db.base import Base

__all__ = ["Base", "audit", "compute", "identity", "policies", "storage"]
