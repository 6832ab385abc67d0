"""User attributes on the user side of the two-tower family: the ``user_content`` fit input.

``user_content`` is an :class:`~models.content.ItemContent` laid out per USER: row ``u`` is
user ``u`` of the interaction matrix (rows ``0 .. n_users - 1``; further rows are ignored),
encoded as item content is (MovieLens' users table: age a number, gender and occupation
categories; :func:`tasks.evaluation.catalogue.user_content` encodes one). The towers keep
the rows of their users; a user beyond them (folded in from a history only) gets an empty
row: every mask false, so the attributes add nothing and the user tower reads the history
bag alone (plus the encoder's biases).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.content import ItemContent
from models.content_encoders import content_arrays

#: the prefix of the user tower's content inputs (the item tower's are ``content_<name>``)
USER_PREFIX = "user_"


def check_user_content(content: ItemContent | None, n_users: int, who: str) -> ItemContent | None:
    """``content`` when it is None or has at least one row per user of the matrix, else
    an error."""
    if content is None:
        return None
    if not isinstance(content, ItemContent):
        raise TypeError(
            f"{who}: user_content must be a models.content.ItemContent (one row per user), "
            f"got {type(content).__name__}"
        )
    if content.kinds and len(content) < n_users:
        raise ValueError(
            f"{who}: user_content has {len(content)} rows, expected at least {n_users}: row u "
            "is user u of the interaction matrix, in index order; encode the users table "
            "for every user of the matrix (a user without attributes: every mask false)"
        )
    return content


def kept_user_content(content: ItemContent | None, n_users: int) -> ItemContent:
    """The rows of the matrix's users, copied into memory (empty without content)."""
    if content is None or not content.kinds:
        return ItemContent({}, {}, {})
    rows = content.rows(slice(0, n_users))
    return ItemContent(
        dict(rows.kinds),
        {n: np.array(v) for n, v in rows.values.items()},
        {n: np.asarray(m, dtype=bool).copy() for n, m in rows.masks.items()},
        dict(rows.sizes),
    )


def user_rows(content: ItemContent, users: np.ndarray) -> ItemContent:
    """The rows of ``users`` (indices); a user at or beyond ``len(content)`` gets an empty
    row (zeros, every mask false)."""
    users = np.asarray(users, dtype=np.int64)
    known = (users >= 0) & (users < len(content))
    index = np.where(known, users, 0)
    rows = content.rows(index)
    values = {}
    for name, array in rows.values.items():
        array = np.array(array)
        array[~known] = 0
        values[name] = array
    masks = {name: np.asarray(m, dtype=bool) & known for name, m in rows.masks.items()}
    return ItemContent(dict(rows.kinds), values, masks, dict(rows.sizes))


def user_arrays(content: ItemContent, users: np.ndarray) -> dict[str, Any]:
    """The user tower's content inputs for ``users``: :func:`content_arrays` of their
    rows, each key prefixed with :data:`USER_PREFIX`."""
    arrays = content_arrays(user_rows(content, users), content.sizes)
    return {USER_PREFIX + key: value for key, value in arrays.items()}


def user_encoder(content: ItemContent, dim: int, init: Any) -> tuple[dict[str, Any], Any]:
    """Keras inputs (named as :func:`user_arrays` names them) and the user's attribute
    vector (``dim`` floats): :func:`models.content_encoders.content_encoder` over the
    users' layout, as one nested model (``user_content_encoder``) whose inputs are
    prefixed so they never meet the item tower's."""
    import keras

    from models.content_encoders import content_encoder

    inner, vector = content_encoder(content, dim, init)
    encoder = keras.Model(inner, vector, name="user_content_encoder")
    outer = {
        USER_PREFIX + key: keras.Input(shape=t.shape[1:], dtype=t.dtype, name=USER_PREFIX + key)
        for key, t in inner.items()
    }
    return outer, encoder({key[len(USER_PREFIX) :]: t for key, t in outer.items()})
