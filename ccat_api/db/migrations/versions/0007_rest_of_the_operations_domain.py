"""rest of the operations domain: observatory, telescope, configurations, sub-programs,
sources, modes, data locations, physical copies, routes, transfers and their logs,
long-term-archive transfers, staging jobs; permissions to manage them

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 09:31:53.040174
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


NEW_PERMISSIONS = {
    "manage:catalog": "Create and change programs, sources, obs units, instruments, locations",
    "manage:staging": "Request and follow staging jobs",
}
GRANTS = [
    ("admin", "manage:catalog"),
    ("admin", "manage:staging"),
    ("operator", "manage:catalog"),
    ("operator", "manage:staging"),
    ("observer", "manage:staging"),
]


def upgrade() -> None:
    op.create_table(
        "observation_modes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observation_modes")),
        sa.UniqueConstraint("name", name=op.f("uq_observation_modes_name")),
    )
    op.create_table(
        "observatories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observatories")),
        sa.UniqueConstraint("name", name=op.f("uq_observatories_name")),
    )
    op.create_table(
        "sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_type", sa.Text(), nullable=False),
        sa.Column("ra_deg", sa.Float(), nullable=True),
        sa.Column("dec_deg", sa.Float(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("elevation_deg", sa.Float(), nullable=True),
        sa.Column("azimuth_min_deg", sa.Float(), nullable=True),
        sa.Column("azimuth_max_deg", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.CheckConstraint(
            "source_type <> 'constant_elevation' OR elevation_deg IS NOT NULL",
            name=op.f("ck_sources_constant_elevation_has_elevation"),
        ),
        sa.CheckConstraint(
            "source_type <> 'fixed' OR (ra_deg IS NOT NULL AND dec_deg IS NOT NULL)",
            name=op.f("ck_sources_fixed_has_coordinates"),
        ),
        sa.CheckConstraint(
            "source_type <> 'solar_system' OR body IS NOT NULL",
            name=op.f("ck_sources_solar_system_has_body"),
        ),
        sa.CheckConstraint(
            "source_type IN ('fixed', 'solar_system', 'constant_elevation')",
            name=op.f("ck_sources_source_type_allowed"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    op.create_index("ix_sources_ra_dec", "sources", ["ra_deg", "dec_deg"], unique=False)
    op.create_table(
        "data_locations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("location_type", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("base_uri", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint(
            "location_type IN ('disk', 's3', 'tape')",
            name=op.f("ck_data_locations_location_type_allowed"),
        ),
        sa.CheckConstraint(
            "role IN ('source', 'buffer', 'long_term_archive', 'processing')",
            name=op.f("ck_data_locations_role_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_data_locations_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_locations")),
        sa.UniqueConstraint("name", name=op.f("uq_data_locations_name")),
    )
    op.create_index(op.f("ix_data_locations_site_id"), "data_locations", ["site_id"], unique=False)
    op.create_table(
        "sub_observing_programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("observing_program_id", sa.Integer(), nullable=False),
        sa.Column("short_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["observing_program_id"],
            ["observing_programs.id"],
            name=op.f("fk_sub_observing_programs_observing_program_id_observing_programs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sub_observing_programs")),
        sa.UniqueConstraint(
            "observing_program_id",
            "short_name",
            name=op.f("uq_sub_observing_programs_observing_program_id"),
        ),
    )
    op.create_index(
        op.f("ix_sub_observing_programs_observing_program_id"),
        "sub_observing_programs",
        ["observing_program_id"],
        unique=False,
    )
    op.create_table(
        "telescopes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("observatory_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("diameter_m", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["observatory_id"],
            ["observatories.id"],
            name=op.f("fk_telescopes_observatory_id_observatories"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_telescopes_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telescopes")),
        sa.UniqueConstraint("name", name=op.f("uq_telescopes_name")),
    )
    op.create_index(
        op.f("ix_telescopes_observatory_id"), "telescopes", ["observatory_id"], unique=False
    )
    op.create_index(op.f("ix_telescopes_site_id"), "telescopes", ["site_id"], unique=False)
    op.create_table(
        "data_transfer_routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("origin_location_id", sa.Integer(), nullable=False),
        sa.Column("destination_location_id", sa.Integer(), nullable=False),
        sa.Column("route_type", sa.Text(), nullable=False),
        sa.Column("via_site_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.Text(), server_default="bbcp", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.CheckConstraint(
            "route_type IN ('direct', 'relay')",
            name=op.f("ck_data_transfer_routes_route_type_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_location_id"],
            ["data_locations.id"],
            name=op.f("fk_data_transfer_routes_destination_location_id_data_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["origin_location_id"],
            ["data_locations.id"],
            name=op.f("fk_data_transfer_routes_origin_location_id_data_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["via_site_id"], ["sites.id"], name=op.f("fk_data_transfer_routes_via_site_id_sites")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_transfer_routes")),
        sa.UniqueConstraint("name", name=op.f("uq_data_transfer_routes_name")),
    )
    op.create_table(
        "staging_jobs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("destination_location_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'staging', 'completed', 'failed', 'cancelled')",
            name=op.f("ck_staging_jobs_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_location_id"],
            ["data_locations.id"],
            name=op.f("fk_staging_jobs_destination_location_id_data_locations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staging_jobs")),
    )
    op.create_table(
        "instrument_module_configurations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument_module_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instrument_module_id"],
            ["instrument_modules.id"],
            name=op.f(
                "fk_instrument_module_configurations_instrument_module_id_instrument_modules"
            ),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instrument_module_configurations")),
        sa.UniqueConstraint(
            "instrument_module_id",
            "name",
            name=op.f("uq_instrument_module_configurations_instrument_module_id"),
        ),
    )
    op.create_index(
        op.f("ix_instrument_module_configurations_instrument_module_id"),
        "instrument_module_configurations",
        ["instrument_module_id"],
        unique=False,
    )
    op.create_table(
        "observation_configurations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("observation_mode_id", sa.Integer(), nullable=False),
        sa.Column("instrument_module_configuration_id", sa.Integer(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instrument_module_configuration_id"],
            ["instrument_module_configurations.id"],
            name=op.f(
                "fk_observation_configurations_instrument_module_configuration_id_instrument_module_configurations"
            ),
        ),
        sa.ForeignKeyConstraint(
            ["observation_mode_id"],
            ["observation_modes.id"],
            name=op.f("fk_observation_configurations_observation_mode_id_observation_modes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observation_configurations")),
        sa.UniqueConstraint("name", name=op.f("uq_observation_configurations_name")),
    )
    op.create_table(
        "data_transfers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("raw_data_package_id", sa.UUID(), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("bytes_total", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("bytes_transferred", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'transferring', 'completed', 'failed')",
            name=op.f("ck_data_transfers_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["raw_data_package_id"],
            ["raw_data_packages.id"],
            name=op.f("fk_data_transfers_raw_data_package_id_raw_data_packages"),
        ),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["data_transfer_routes.id"],
            name=op.f("fk_data_transfers_route_id_data_transfer_routes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_transfers")),
    )
    op.create_index(
        op.f("ix_data_transfers_raw_data_package_id"),
        "data_transfers",
        ["raw_data_package_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_data_transfers_route_id"), "data_transfers", ["route_id"], unique=False
    )
    op.create_index(
        "ix_data_transfers_status_created", "data_transfers", ["status", "created_at"], unique=False
    )
    op.create_table(
        "long_term_archive_transfers",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("raw_data_package_id", sa.UUID(), nullable=False),
        sa.Column("data_location_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'completed', 'failed')",
            name=op.f("ck_long_term_archive_transfers_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["data_location_id"],
            ["data_locations.id"],
            name=op.f("fk_long_term_archive_transfers_data_location_id_data_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["raw_data_package_id"],
            ["raw_data_packages.id"],
            name=op.f("fk_long_term_archive_transfers_raw_data_package_id_raw_data_packages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_long_term_archive_transfers")),
    )
    op.create_index(
        op.f("ix_long_term_archive_transfers_raw_data_package_id"),
        "long_term_archive_transfers",
        ["raw_data_package_id"],
        unique=False,
    )
    op.create_table(
        "physical_copies",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("raw_data_package_id", sa.UUID(), nullable=False),
        sa.Column("data_location_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("checksum", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('present', 'verified', 'deleted', 'corrupt')",
            name=op.f("ck_physical_copies_status_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["data_location_id"],
            ["data_locations.id"],
            name=op.f("fk_physical_copies_data_location_id_data_locations"),
        ),
        sa.ForeignKeyConstraint(
            ["raw_data_package_id"],
            ["raw_data_packages.id"],
            name=op.f("fk_physical_copies_raw_data_package_id_raw_data_packages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_physical_copies")),
    )
    op.create_index(
        op.f("ix_physical_copies_data_location_id"),
        "physical_copies",
        ["data_location_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_physical_copies_raw_data_package_id"),
        "physical_copies",
        ["raw_data_package_id"],
        unique=False,
    )
    op.create_table(
        "staging_job_packages",
        sa.Column("staging_job_id", sa.UUID(), nullable=False),
        sa.Column("raw_data_package_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["raw_data_package_id"],
            ["raw_data_packages.id"],
            name=op.f("fk_staging_job_packages_raw_data_package_id_raw_data_packages"),
        ),
        sa.ForeignKeyConstraint(
            ["staging_job_id"],
            ["staging_jobs.id"],
            name=op.f("fk_staging_job_packages_staging_job_id_staging_jobs"),
        ),
        sa.PrimaryKeyConstraint(
            "staging_job_id", "raw_data_package_id", name=op.f("pk_staging_job_packages")
        ),
    )
    op.create_table(
        "data_transfer_logs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("data_transfer_id", sa.UUID(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "level IN ('debug', 'info', 'warning', 'error')",
            name=op.f("ck_data_transfer_logs_level_allowed"),
        ),
        sa.ForeignKeyConstraint(
            ["data_transfer_id"],
            ["data_transfers.id"],
            name=op.f("fk_data_transfer_logs_data_transfer_id_data_transfers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_transfer_logs")),
    )
    op.create_index(
        "ix_data_transfer_logs_transfer_at",
        "data_transfer_logs",
        ["data_transfer_id", "logged_at"],
        unique=False,
    )
    op.add_column("instruments", sa.Column("telescope_id", sa.Integer(), nullable=True))
    op.add_column(
        "instruments",
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
    )
    op.create_index(
        op.f("ix_instruments_telescope_id"), "instruments", ["telescope_id"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_instruments_telescope_id_telescopes"),
        "instruments",
        "telescopes",
        ["telescope_id"],
        ["id"],
    )
    op.add_column("obs_units", sa.Column("sub_observing_program_id", sa.Integer(), nullable=True))
    op.add_column("obs_units", sa.Column("source_id", sa.Integer(), nullable=True))
    op.add_column(
        "obs_units", sa.Column("observation_configuration_id", sa.Integer(), nullable=True)
    )
    op.add_column(
        "obs_units",
        sa.Column("min_elevation_deg", sa.Float(), server_default="30.0", nullable=False),
    )
    op.add_column(
        "obs_units", sa.Column("duration_s", sa.Float(), server_default="3600.0", nullable=False)
    )
    op.create_index(op.f("ix_obs_units_source_id"), "obs_units", ["source_id"], unique=False)
    op.create_index(
        op.f("ix_obs_units_sub_observing_program_id"),
        "obs_units",
        ["sub_observing_program_id"],
        unique=False,
    )
    op.create_foreign_key(
        op.f("fk_obs_units_sub_observing_program_id_sub_observing_programs"),
        "obs_units",
        "sub_observing_programs",
        ["sub_observing_program_id"],
        ["id"],
    )
    op.create_foreign_key(
        op.f("fk_obs_units_source_id_sources"), "obs_units", "sources", ["source_id"], ["id"]
    )
    op.create_foreign_key(
        op.f("fk_obs_units_observation_configuration_id_observation_configurations"),
        "obs_units",
        "observation_configurations",
        ["observation_configuration_id"],
        ["id"],
    )
    op.add_column(
        "observing_programs", sa.Column("pi_name", sa.Text(), server_default="", nullable=False)
    )
    for name, description in NEW_PERMISSIONS.items():
        op.execute(
            sa.text("INSERT INTO permissions (name, description) VALUES (:n, :d)").bindparams(
                n=name, d=description
            )
        )
    for role, permission in GRANTS:
        op.execute(
            sa.text("INSERT INTO role_permissions (role, permission) VALUES (:r, :p)").bindparams(
                r=role, p=permission
            )
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM role_permissions WHERE permission IN ('manage:catalog', 'manage:staging')"
    )
    op.execute("DELETE FROM permissions WHERE name IN ('manage:catalog', 'manage:staging')")
    op.drop_column("observing_programs", "pi_name")
    op.drop_constraint(
        op.f("fk_obs_units_observation_configuration_id_observation_configurations"),
        "obs_units",
        type_="foreignkey",
    )
    op.drop_constraint(op.f("fk_obs_units_source_id_sources"), "obs_units", type_="foreignkey")
    op.drop_constraint(
        op.f("fk_obs_units_sub_observing_program_id_sub_observing_programs"),
        "obs_units",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_obs_units_sub_observing_program_id"), table_name="obs_units")
    op.drop_index(op.f("ix_obs_units_source_id"), table_name="obs_units")
    op.drop_column("obs_units", "duration_s")
    op.drop_column("obs_units", "min_elevation_deg")
    op.drop_column("obs_units", "observation_configuration_id")
    op.drop_column("obs_units", "source_id")
    op.drop_column("obs_units", "sub_observing_program_id")
    op.drop_constraint(
        op.f("fk_instruments_telescope_id_telescopes"), "instruments", type_="foreignkey"
    )
    op.drop_index(op.f("ix_instruments_telescope_id"), table_name="instruments")
    op.drop_column("instruments", "active")
    op.drop_column("instruments", "telescope_id")
    op.drop_index("ix_data_transfer_logs_transfer_at", table_name="data_transfer_logs")
    op.drop_table("data_transfer_logs")
    op.drop_table("staging_job_packages")
    op.drop_index(op.f("ix_physical_copies_raw_data_package_id"), table_name="physical_copies")
    op.drop_index(op.f("ix_physical_copies_data_location_id"), table_name="physical_copies")
    op.drop_table("physical_copies")
    op.drop_index(
        op.f("ix_long_term_archive_transfers_raw_data_package_id"),
        table_name="long_term_archive_transfers",
    )
    op.drop_table("long_term_archive_transfers")
    op.drop_index("ix_data_transfers_status_created", table_name="data_transfers")
    op.drop_index(op.f("ix_data_transfers_route_id"), table_name="data_transfers")
    op.drop_index(op.f("ix_data_transfers_raw_data_package_id"), table_name="data_transfers")
    op.drop_table("data_transfers")
    op.drop_table("observation_configurations")
    op.drop_index(
        op.f("ix_instrument_module_configurations_instrument_module_id"),
        table_name="instrument_module_configurations",
    )
    op.drop_table("instrument_module_configurations")
    op.drop_table("staging_jobs")
    op.drop_table("data_transfer_routes")
    op.drop_index(op.f("ix_telescopes_site_id"), table_name="telescopes")
    op.drop_index(op.f("ix_telescopes_observatory_id"), table_name="telescopes")
    op.drop_table("telescopes")
    op.drop_index(
        op.f("ix_sub_observing_programs_observing_program_id"), table_name="sub_observing_programs"
    )
    op.drop_table("sub_observing_programs")
    op.drop_index(op.f("ix_data_locations_site_id"), table_name="data_locations")
    op.drop_table("data_locations")
    op.drop_index("ix_sources_ra_dec", table_name="sources")
    op.drop_table("sources")
    op.drop_table("observatories")
    op.drop_table("observation_modes")
