"""What a served deployment pins as its Prefect parameters: the resolved config, no secret.

``recpipe serve`` pins them on every deployment it registers (flows/operate.py), and the
forget flow writes them back over its own run's parameters once the ids are gone
(flows/forget.py).
"""

from __future__ import annotations

from tasks.config import PipelineConfig


def deployment_parameters(config: PipelineConfig) -> dict:
    """What a served deployment pins: the whole resolved config (TOML, env vars, options).

    Prefect stores a deployment's parameters in its database and shows them in its UI, so
    no secret may be among them: the database URL is pinned without a password, and one
    in the URL is refused (the password comes from ``publish.database_password_file`` /
    ``database_password_env``, or libpq's ``PGPASSFILE`` / ``PGPASSWORD``, read by the
    flow run where it runs).
    """
    from sqlalchemy.engine import make_url

    from tasks.errors import ConfigError

    params = config.model_dump(mode="json", by_alias=True)
    if config.publish.database_url is not None:
        url = make_url(config.publish.database_url.get_secret_value())
        if url.password:
            raise ConfigError(
                f"publish.database_url ({url.render_as_string(hide_password=True)}) holds a "
                "password, and a served deployment pins its config as Prefect parameters, "
                "which Prefect stores and shows; put the password in a file "
                "(publish.database_password_file) or an environment variable "
                "(publish.database_password_env), or use PGPASSFILE, and keep the URL "
                "without it"
            )
        params["publish"]["database_url"] = url.render_as_string()
    return {"config": params}
