"""The scanner's encodings and containers, and the rewriters, on tiny data."""

from __future__ import annotations

import base64
import gzip
import html
import io
import json
import sqlite3
import zipfile
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tasks.forget.files import rewrite_npz_rows, rewrite_parquet, sweep
from tasks.forget.forms import TextMatcher, count_in, forms_of
from tasks.forget.scan import verify

UID = "zoë.smith"


@pytest.mark.parametrize(
    ("form", "data"),
    [
        ("utf-8", f"x {UID} y".encode()),
        ("utf-16-le", f"x {UID} y".encode("utf-16-le")),
        ("utf-16-be", f"x {UID} y".encode("utf-16-be")),
        ("json-escaped", json.dumps({"u": UID}).encode()),
        ("url-encoded", f"/recs?user={quote(UID, safe='')}&k=5".encode()),
        ("html-numeric", "".join(f"&#{ord(c)};" for c in UID).encode()),
        ("base64", base64.b64encode(UID.encode())),
        ("base64", base64.b64encode(b"a" + UID.encode() + b"b")),
        ("base64", base64.b64encode(b"ab" + UID.encode())),
    ],
)
def test_every_form_is_found(form: str, data: bytes) -> None:
    assert form in count_in(data, forms_of(UID), bounded=False)


def test_html_escaping_is_a_form() -> None:
    uid = "<b>&co"
    data = f"<td>{html.escape(uid)}</td>".encode()
    assert count_in(data, forms_of(uid)) == {"html-escaped": 1}


def test_a_longer_id_is_not_the_id() -> None:
    forms = forms_of("u0001")
    assert count_in(b'["u00012", "xu0001"]', forms) == {}
    assert count_in(b'["u0001", "u00012"]', forms) == {"utf-8": 1}
    assert count_in(b'"u0001"', forms, bounded=False) == {"utf-8": 1}


def test_compressed_containers_are_opened(tmp_path) -> None:
    frame = pd.DataFrame({"user_id": [UID] * 50 + ["other"] * 50, "v": range(100)})
    frame.to_parquet(tmp_path / "t.parquet", compression="zstd", write_statistics=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("deep/users.json.gz", gzip.compress(json.dumps([UID]).encode()))
    (tmp_path / "model.keras").write_bytes(buffer.getvalue())
    (tmp_path / "log.gz").write_bytes(gzip.compress(UID.encode("utf-16-le")))
    where = {(f.where, f.form) for f in verify(tmp_path, UID)}
    assert ("t.parquet column user_id", "utf-8") in where
    assert ("model.keras!deep/users.json.gz!gunzip", "json-escaped") in where
    assert ("log.gz!gunzip", "utf-16-le") in where


def test_sqlite_free_pages_are_searched(tmp_path) -> None:
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (user_id TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(UID,)] + [(f"u{i}",) for i in range(100)])
    conn.commit()
    conn.execute("PRAGMA secure_delete=OFF")
    conn.execute("DELETE FROM t WHERE user_id = ?", (UID,))
    conn.commit()
    conn.close()
    assert [f.where for f in verify(tmp_path, UID)] == ["db.sqlite"]  # a free page only
    conn = sqlite3.connect(path)
    conn.execute("VACUUM")
    conn.close()
    assert verify(tmp_path, UID) == []


def test_rewriters_remove_the_user_and_keep_the_rest(tmp_path) -> None:
    matcher = TextMatcher.of({UID: "erased-000000000000"})
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({"user_id": ["a", UID, "b"], "user_idx": [0, 1, 2]}).to_parquet(
        features / "users.parquet"
    )
    (features / "train.parquet").mkdir()
    pd.DataFrame({"user_idx": [0, 1, 1, 2], "item_idx": [0, 1, 2, 3]}).to_parquet(
        features / "train.parquet" / "part-0.parquet"
    )
    bundle = tmp_path / "models" / "ease"
    (bundle / "recommender").mkdir(parents=True)
    (bundle / "users.json").write_text(json.dumps(["a", UID, "b"]))
    sp.save_npz(bundle / "recommender" / "train.npz", sp.csr_matrix(np.ones((3, 2))))
    (tmp_path / "docs.html").write_text(f"<td>{html.escape(UID)}</td><td>u1</td>")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / f"{UID}.png").write_bytes(b"\x89PNG")
    assert ("exports/zoë.smith.png", "utf-8 in the path") in {
        (f.where, f.form) for f in verify(tmp_path, UID)
    }
    needles = [n.encode() for n in matcher.owner]
    _, deleted = sweep(tmp_path, matcher, needles, set())
    assert deleted == ["exports/erased-000000000000.png"]
    train = pd.read_parquet(features / "train.parquet" / "part-0.parquet")
    assert train["user_idx"].tolist() == [0, 2]
    users = pd.read_parquet(features / "users.parquet")
    assert users["user_id"].tolist() == ["a", "erased-000000000000", "b"]
    assert json.loads((bundle / "users.json").read_text()) == ["a", "erased-000000000000", "b"]
    matrix = sp.load_npz(bundle / "recommender" / "train.npz").toarray()
    assert matrix.tolist() == [[1, 1], [0, 0], [1, 1]]
    assert "u1" in (tmp_path / "docs.html").read_text()
    assert verify(tmp_path, UID) == []
    again, _ = sweep(tmp_path, matcher, needles, set())
    assert sum(again.values()) == 0  # idempotent
    assert rewrite_parquet(features / "users.parquet", matcher, vocabulary=True) == 0
    assert rewrite_npz_rows(bundle / "recommender" / "train.npz", {1}, 3) == 0


def test_forgetting_removes_the_users_relations_both_ways(tmp_path) -> None:
    """The graph in the features (ids) and in a social model's bundle (indices): every
    edge from or to the forgotten user goes, the others stay."""
    matcher = TextMatcher.of({UID: "erased-000000000000"})
    features = tmp_path / "features"
    features.mkdir()
    pd.DataFrame({"user_id": ["a", UID, "b"], "user_idx": [0, 1, 2]}).to_parquet(
        features / "users.parquet"
    )
    pd.DataFrame(
        {
            "user_id": ["a", UID, "b", "a"],
            "friend_id": [UID, "a", "a", "b"],
            "weight": [1.0, 1.0, 1.0, 1.0],
            "user_idx": [0, 1, 2, 0],
            "friend_idx": [1, 0, 0, 2],
        }
    ).to_parquet(features / "social.parquet")
    bundle = tmp_path / "models" / "social_pop"
    (bundle / "recommender").mkdir(parents=True)
    (bundle / "users.json").write_text(json.dumps(["a", UID, "b"]))
    graph = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=np.float32))
    sp.save_npz(bundle / "recommender" / "social.npz", graph)
    needles = [n.encode() for n in matcher.owner]
    sweep(tmp_path, matcher, needles, set())
    kept = pd.read_parquet(features / "social.parquet")
    assert list(zip(kept["user_id"], kept["friend_id"], strict=True)) == [("b", "a"), ("a", "b")]
    after = sp.load_npz(bundle / "recommender" / "social.npz").toarray()
    assert after.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert rewrite_npz_rows(bundle / "recommender" / "social.npz", {1}, 3) == 0  # idempotent


def test_a_followed_user_without_relations_of_their_own_is_unlinked_too(tmp_path) -> None:
    """In a follows graph the forgotten user (index 1) follows nobody: their row is empty
    already, and the two users following them lose that link."""
    graph = sp.csr_matrix(np.array([[0, 1, 1], [0, 0, 0], [1, 1, 0]], dtype=np.float32))
    path = tmp_path / "social.npz"
    sp.save_npz(path, graph)
    assert rewrite_npz_rows(path, {1}, 3) == 2
    assert sp.load_npz(path).toarray().tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert rewrite_npz_rows(path, {1}, 3) == 0
