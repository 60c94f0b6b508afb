from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crm.models import Base


def test_migrations_match_the_models(engine):
    """A model change without its migration would break every existing installation."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
