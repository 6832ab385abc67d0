"""The output stages of a night: score every user, check the table against its contract,
monitor it against the previous night, publish it, report the night's figures
(flows/night_context.py holds the run context; tasks/score.py, tasks/check.py, tasks/monitor.py,
tasks/publish.py and tasks/report.py the stages)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from flows.night_context import NightContext

if TYPE_CHECKING:
    from tasks.evaluate import ModelResult
    from tasks.ingest import IngestResult
    from tasks.promote import Promotion
    from tasks.publish import Published
    from tasks.score import ScoreResult


class OutputStages(NightContext):
    """Score, check, monitor, publish and report, as methods of :class:`flows.night.Night`."""

    def score(self, promotion: Promotion, ingest: IngestResult) -> ScoreResult:
        """Every user's top-K by the version the gate chose (skipped when the data, the
        model version, the catalog and the settings are those of an earlier run of the
        date: its scores are reused and publishing stamps this run's id on them)."""
        from flows.stage_keys import score_parts
        from flows.steps import score_in_shards
        from tasks import tracking
        from tasks.score import ScoreResult
        from tasks.storage.cache import tree_digest

        name = self.config.tracking.registered_model
        version = promotion.serving_version or tracking.champion_version_or_fail(self.client, name)
        out_dir = self.ws.scores(self.run_date)
        self._score_parts = score_parts(
            validated_path=self.validated_path,
            items_path=ingest.items_path,
            model=f"{name}/{version}@{_version_run(self.client, name, version)}",
            config=self.config.score,
            run_date=self.run_date,
        )
        self._score_parts["positive"] = list(self._positive)  # reasons depend on it
        graph = self._graph_path()
        if graph is not None:  # the social strategy reads the graph
            self._score_parts["graph"] = tree_digest(graph)
        content = self.out.get("features", {}).get("content")
        if content:  # new items: their content and the content-aware models that rank them
            self._score_parts["content"] = content
            self._score_parts["content_models"] = self._content_models(promotion)
        result = self._cached(
            "score",
            self._score_parts,
            [out_dir],
            lambda: score_in_shards(
                self.step,
                validated_path=self.validated_path,
                items_path=ingest.items_path,
                registered_name=name,
                workspace_root=str(self.ws.root),
                config=self.config.score,
                run_id=self.run_id,
                run_date=self.run_date,
                out_dir=str(out_dir),
                version=version,
                positive=self._positive,
                graph_path=graph,
                features_dir=str(self.ws.features(self.run_date)),
                content_models=self._content_models(promotion),
            ),
            ScoreResult,
        )
        self.out["scoring"] = result.summary()
        return result

    def _graph_path(self) -> str | None:
        """The night's relations between users in its features, when it has some."""
        if self.edges is None:
            return None
        return str(self.ws.features(self.run_date) / "social.parquet")

    def _content_models(self, promotion: Promotion) -> list[dict]:
        """Tonight's registered models with their hold-out figures: a content-aware one
        ranks the catalogue's new items when the champion does not read content."""
        return [
            {
                "name": m["model"],
                "version": promotion.versions[m["model"]],
                "run_id": m["run_id"],
                "metrics": m["metrics"],
            }
            for m in self.out.get("models", [])
            if m["model"] in promotion.versions
        ]

    def check(self, scored: ScoreResult, ingest: IngestResult) -> ScoreResult:
        """The output against its contract (a GX suite), unless ``publish.validate_output``
        is off; ``scored`` with the check's result as ``output_check``."""
        from tasks.check import check_output
        from tasks.storage.cache import key_of

        if not self.config.publish.validate_output:
            return scored
        checked = self._cached(
            "check",  # a pure function of the scores, which the score key pins down
            {"stage": "check", "scores": key_of(self._score_parts)},
            [self.ws.scores(self.run_date)],
            lambda: self.step(
                check_output,
                scores_path=scored.path,
                shard_paths=scored.shard_paths,
                items_path=ingest.items_path,
                config=self.config.score,
                gx_root=str(self.ws.validation_root),
                known_items_path=scored.items_vocab_path,
            ),
        )
        scored = scored.model_copy(update={"output_check": checked})
        self.out["scoring"] = scored.summary()
        return scored

    def monitor(self, scored: ScoreResult) -> dict:
        from tasks.monitor import monitor

        result = self._timed(
            "monitor",
            monitor,
            scores_path=scored.path,
            validated_path=self.validated_path,
            table_root=str(self.ws.tables / self.config.publish.table),
            run_date=self.run_date,
            config=self.config.monitor,
            workspace_root=str(self.ws.root),
            parent_run_id=self.parent_run_id,
        )
        self.out["monitor"] = result
        return result

    def publish(self, scored: ScoreResult, promotion: Promotion, ingest: IngestResult) -> Published:
        """Both tables, both stores, one commit point; then the alias (tasks/publish.py).
        The publishing context goes to the version's run first and is pointed at once the
        tables are published (tasks/tracking/serving.py): the served model answers with
        the rows the table holds."""
        from tasks.publish import publish, record_serving_context
        from tasks.publishing.champion import ChampionMove
        from tasks.publishing.stores import RECOMMENDATIONS, SIMILAR_ITEMS, Output
        from tasks.tracking import serving

        config = self.config.publish
        outputs = [Output(config.table, RECOMMENDATIONS, Path(scored.path))]
        if scored.similar_path:
            outputs.append(Output(config.similar_table, SIMILAR_ITEMS, Path(scored.similar_path)))
        move = None
        if promotion.move_alias:
            # move_alias only when promoted, and then serving_version is the challenger's
            assert promotion.serving_version is not None
            move = ChampionMove(
                promotion.registered_name, promotion.serving_version, promotion.reason
            )
        model_run, layer = self._timed(
            "serving",  # the served model's context: tasks/scoring/serving.py
            record_serving_context,
            workspace_root=str(self.ws.root),
            registered_name=self.config.tracking.registered_model,
            version=scored.version,
            layer_dir=self.ws.root / "serving" / f"run_date={self.run_date.isoformat()}",
            run={"run_id": self.run_id, "run_date": self.run_date, "model_version": scored.version},
            model_name=scored.model,
            config=self.config.score,
            scores_dir=self.ws.scores(self.run_date),
            validated_path=Path(self.validated_path),
            items_path=ingest.items_path,
            positive=self._positive,
        )
        result = self._timed(
            "publish",
            publish,
            workspace_root=str(self.ws.root),
            database_url=self.database_url,
            run_id=self.run_id,
            run_date=self.run_date,
            outputs=outputs,
            keep_runs=config.keep_runs,
            champion=move,
            retention_hours=config.lake_retention_hours,
        )
        serving.point_at(self.client, model_run, layer)
        self.out["published"] = result.summary()
        return result

    def report(self, results: list[ModelResult], scored: ScoreResult) -> None:
        """Figures and counts on the parent run (rendered again only when the models'
        figures or the scores changed)."""
        from tasks.report import log_report, report
        from tasks.storage.cache import key_of

        out_dir = self.ws.reports(self.run_date)
        parts = {
            "stage": "report",
            "scores": key_of(self._score_parts),
            "models": [[r.model, r.run_id, r.metrics] for r in results],
        }
        rendered = self._cached(
            "report",
            parts,
            [out_dir],
            lambda: self.step(
                report,
                results=results,
                validated_path=self.validated_path,
                scores_path=scored.path,
                out_dir=str(out_dir),
            ),
        )
        log_report(str(self.ws.root), self.parent_run_id, rendered)


def _version_run(client: Any, name: str, version: str | None) -> str:
    """The MLflow run behind a registered version (a rebuilt registry can reuse numbers)."""
    if version is None:
        return ""
    return client.get_model_version(name, version).run_id or ""
