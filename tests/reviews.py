"""A newcomer's own CSV: 33 product reviews whose text column is not called ``text``.

Columns ``review_id, category, product, rating, review_text``, as in issue 11: the id column
comes first and every id is unique and short, the text is the longest column, the rating a
number. Shared by the ingest, command-line and Corpus page tests.
"""

from __future__ import annotations

import csv
import io

COLUMNS = ("review_id", "category", "product", "rating", "review_text")

BATTERY_FAILURES = ("R-1007", "R-1019")
"""The reviews of a battery that stopped working within days: the answers to a query such as
"battery died after a week"."""

_REVIEWS = [
    (
        "kitchen",
        "Pour-over kettle",
        5,
        (
            "Heats a full litre in under four minutes and the gooseneck spout makes pouring slow "
            "and even. The handle stays cool, which I did not expect at this price."
        ),
    ),
    (
        "kitchen",
        "Chef's knife, 20 cm",
        4,
        (
            "Sharp out of the box and well balanced. It lost its edge after a month of daily use,"
            " but a few passes on the honing rod brought it back."
        ),
    ),
    (
        "outdoor",
        "Two-person tent",
        2,
        (
            "The rain fly leaked at the seams during the first storm, so we woke up with wet "
            "sleeping bags. Setting it up was easy, though."
        ),
    ),
    (
        "home",
        "Memory foam pillow",
        5,
        (
            "My neck pain is gone after two weeks. It smelled of chemicals for the first day; "
            "airing it on the balcony fixed that."
        ),
    ),
    (
        "electronics",
        "USB-C charger, 65 W",
        4,
        (
            "Charges my laptop and phone at the same time without getting hot. The cable is "
            "short, so I bought a longer one."
        ),
    ),
    (
        "toys",
        "Wooden train set",
        5,
        (
            "Solid pieces, no splinters, and the tracks click together firmly. My three-year-old "
            "plays with it every single day."
        ),
    ),
    (
        "electronics",
        "Wireless earbuds",
        1,
        (
            "Sound was fine at first, but the battery died after nine days: the right earbud will"
            " not charge at all any more. The replacement did exactly the same."
        ),
    ),
    (
        "home",
        "Robot vacuum",
        3,
        (
            "It cleans the open floor well but gets stuck under the sofa every time and keeps "
            "tangling the rug fringes in its brush."
        ),
    ),
    (
        "kitchen",
        "Cast iron skillet",
        5,
        (
            "Came pre-seasoned and sears steak beautifully. It is heavy, so lifting it with one "
            "hand takes some practice."
        ),
    ),
    (
        "beauty",
        "Electric toothbrush",
        4,
        (
            "Teeth feel cleaner than with my manual brush and the two-minute timer is handy. The "
            "travel case feels flimsy."
        ),
    ),
    (
        "outdoor",
        "Hiking boots",
        5,
        (
            "Waterproof for real: I walked through streams on a ten-kilometre hike and my socks "
            "stayed dry. No blisters after breaking them in."
        ),
    ),
    (
        "electronics",
        "Smart watch",
        3,
        (
            "Tracks steps and sleep reasonably, but the heart rate readings jump around during "
            "runs and the strap irritates my wrist."
        ),
    ),
    (
        "home",
        "Blackout curtains",
        4,
        (
            "The bedroom is properly dark now, even at six in the morning in summer. The colour "
            "is a little lighter than on the photo."
        ),
    ),
    (
        "kitchen",
        "Blender",
        2,
        (
            "Loud, and it struggles with frozen fruit: I have to stop and stir every few seconds."
            " The jug also cracked near the base."
        ),
    ),
    (
        "toys",
        "Building blocks, 500 pieces",
        5,
        (
            "Plenty of pieces and compatible with the big brands. The storage box is a nice touch"
            " for tidying up."
        ),
    ),
    (
        "office",
        "Ergonomic office chair",
        4,
        (
            "Good lumbar support and the armrests adjust in every direction. Assembly took an "
            "hour and one screw was missing."
        ),
    ),
    (
        "outdoor",
        "Camping stove",
        5,
        (
            "Boils water in three minutes even in wind, and it folds small enough to fit inside "
            "the cooking pot."
        ),
    ),
    (
        "beauty",
        "Hair dryer",
        3,
        (
            "Dries quickly but it is very loud, and the cool-shot button stopped working after a "
            "few weeks."
        ),
    ),
    (
        "electronics",
        "Bluetooth speaker",
        1,
        (
            "Battery died within a week of buying it. Now the speaker only works when plugged in,"
            " which defeats the point of a portable speaker."
        ),
    ),
    (
        "home",
        "Duvet, all seasons",
        5,
        (
            "Warm without overheating, and it survived several washes without clumping. Good "
            "value for the size."
        ),
    ),
    (
        "kitchen",
        "Coffee grinder",
        4,
        (
            "Consistent grind for espresso and pour-over alike. Cleaning the burrs is fiddly, but"
            " a brush is included."
        ),
    ),
    (
        "electronics",
        "Portable power bank",
        5,
        (
            "Charged my phone four times on a weekend trip and still had power left. It takes a "
            "whole night to recharge itself, though."
        ),
    ),
    (
        "office",
        "Standing desk",
        5,
        (
            "The motor is quiet, the presets are handy and the desk does not wobble even at full "
            "height. Delivery took three weeks."
        ),
    ),
    (
        "toys",
        "Remote control car",
        2,
        (
            "Fast and fun for ten minutes, then the steering stopped responding. The remote feels"
            " cheap and the battery cover fell off."
        ),
    ),
    (
        "outdoor",
        "Insulated water bottle",
        5,
        (
            "Keeps drinks cold for a whole day in the car, even in summer heat. It does not leak "
            "in my bag."
        ),
    ),
    (
        "beauty",
        "Facial moisturiser",
        4,
        (
            "Absorbs quickly without feeling greasy and has no strong perfume. The pump dispenser"
            " jammed once."
        ),
    ),
    (
        "home",
        "LED desk lamp",
        4,
        (
            "Bright, with adjustable colour temperature. The touch controls are a bit too "
            "sensitive and switch it off when I brush past."
        ),
    ),
    (
        "kitchen",
        "Non-stick frying pan",
        1,
        (
            "The coating started to peel after two months even though I only used wooden spoons. "
            "I would not buy it again."
        ),
    ),
    (
        "electronics",
        "Noise-cancelling headphones",
        5,
        (
            "Blocks the engine noise on flights completely and the ear cushions stay comfortable "
            "for hours."
        ),
    ),
    (
        "office",
        "Wireless keyboard",
        3,
        (
            "Nice keys but it disconnects from my computer every few hours, and pairing again is "
            "a chore."
        ),
    ),
    (
        "outdoor",
        "Garden hose, 30 m",
        2,
        (
            "Kinks constantly and the connector leaked from day one. I had to wrap it with tape "
            "to water the garden."
        ),
    ),
    (
        "toys",
        "Jigsaw puzzle, 1000 pieces",
        5,
        (
            "The pieces fit snugly and the print is sharp. A relaxing weekend project for the "
            "whole family."
        ),
    ),
    (
        "home",
        "Air purifier",
        4,
        (
            "The air feels fresher and my allergies are calmer at night. The filter replacement "
            "is expensive."
        ),
    ),
]

ROWS = [
    {"review_id": f"R-{1001 + i}", "category": c, "product": p, "rating": r, "review_text": t}
    for i, (c, p, r, t) in enumerate(_REVIEWS)
]


def reviews_csv() -> str:
    """The reviews as CSV text, with a header row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(ROWS)
    return buffer.getvalue()
