"""The image encoder learns something on the demo: on the demo's held-out items (the
new-items protocol), the content model that reads the items' pictures ranks them better
than the same model without them. The other content (genres, descriptions, titles and
years) is left out of both but the release year, which carries no taste here (the
demo's stationary form draws it at random), so the pictures are the only place the
tastes show."""

from __future__ import annotations

from models import make_recommender
from models.metrics import ndcg_at_k
from tasks.config import ContentConfig
from tasks.data.content import content_schema
from tasks.evaluation.catalogue import CatalogueContent
from tasks.evaluation.new_items import rank_new_items, split_new_items
from tasks.sources.demo import GENRES, generate_demo
from tasks.sources.demo_content import write_demo_images

N_GENRES, K = 6, 10
LEFT_OUT = ["title", "genres", "primary_genre", "description"]


def _new_items_ndcg(skip: list[str], split, catalogue: CatalogueContent) -> float:
    model = make_recommender(
        "content_tower", epochs=8, batch_size=256, seed=7, skip_content=skip, content_dim=16
    )
    content = catalogue.content(split.item_ids)
    model.fit(split.history(), content=content)
    users, relevant = split.target()
    ranked, how = rank_new_items(
        model, users, split.history(), content.rows(slice(split.n_kept, None)), K
    )
    assert ranked is not None and how == "content", how
    return ndcg_at_k(ranked, relevant, K)


def test_the_image_aware_model_ranks_new_demo_items_better(tmp_path) -> None:
    events, items = generate_demo(
        n_users=400, n_items=240, n_genres=N_GENRES, mean_interactions=25, drift=0.0, seed=3
    )
    items = write_demo_images(items, tmp_path, GENRES[:N_GENRES], seed=3)
    config = ContentConfig()
    schema = content_schema(items, config, tmp_path)
    assert "image" in {column.kind for column in schema.columns}
    catalogue = CatalogueContent(items, schema, config)
    split = split_new_items(events, share=0.2, seed=5)
    with_images = _new_items_ndcg(LEFT_OUT, split, catalogue)
    without = _new_items_ndcg([*LEFT_OUT, "image"], split, catalogue)
    assert with_images > without + 0.05, (with_images, without)
