"""What the item catalogue says about each item beyond its id: typed content columns.

``[content]`` names the catalogue columns of each kind::

    [content]
    text = ["description"]                  # free text, tokenised
    category = ["brand"]                    # one value per item
    categories = ["tags"]                   # several values, "A|B" (``separator``)
    numeric = ["price"]
    coordinates = [{latitude = "lat", longitude = "lon"}]
    vector = ["embedding"]                  # a list of floats, or "0.1 0.2 ..." as text
    image = ["poster"]                      # a local file, relative to the catalogue's folder

Declared columns must exist in the catalogue. With ``detect = true`` (the default) the
other columns are typed by what they hold (tasks/data/content.py): a column named
lat/latitude beside one named lon/lng/longitude is coordinates, lists of floats a
vector, paths ending in .png/.jpg/.jpeg (one at least on disk) images, "|"-separated
values categories, numbers numeric, many distinct long strings text, few distinct
values a category. ``ignore`` lists columns never taken as content. Content stays off
for a catalogue without such columns, and without a catalogue.

``max_text_chars``: a longer text quarantines that item's text (the item stays).
The features (tasks/data/content_features.py): at most ``vocabulary_size`` text tokens
and category values (the most frequent), ``max_tokens`` token ids per item and text,
images resized to ``image_size`` x ``image_size`` RGB.
"""

from __future__ import annotations

from pydantic import Field

from tasks.config.section import Section


class CoordinateColumns(Section):
    """A latitude and a longitude column, in degrees."""

    latitude: str = Field(min_length=1)
    longitude: str = Field(min_length=1)


class ContentConfig(Section):
    """The catalogue's content columns by kind (module docstring), and their limits."""

    detect: bool = True
    text: list[str] = Field(default_factory=list)
    category: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    separator: str = Field("|", min_length=1)
    numeric: list[str] = Field(default_factory=list)
    coordinates: list[CoordinateColumns] = Field(default_factory=list)
    vector: list[str] = Field(default_factory=list)
    image: list[str] = Field(default_factory=list)
    ignore: list[str] = Field(default_factory=list)
    max_text_chars: int = Field(5000, ge=1)
    vocabulary_size: int = Field(20_000, ge=2)
    max_tokens: int = Field(64, ge=1)
    image_size: int = Field(32, ge=4, le=512)

    @property
    def declared(self) -> bool:
        """Whether any column is declared."""
        return any(
            (self.text, self.category, self.categories, self.numeric, self.coordinates)
        ) or any((self.vector, self.image))
