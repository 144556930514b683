"""Generated, deterministic fake data for the operations database.

The same seed gives the same rows on every machine, so previews, tests and the README's
examples agree. Names are combined from short lists; every address is under the reserved
``example.com`` / ``example.org`` domains, so nothing here is anybody's real data.
"""

import random
import sqlite3

SEED = 12
CUSTOMERS = 2_000
# Clearly marked test rows ("Delete all test data from the production database" deletes
# them): status 'test', named and addressed as such. They come after the real-looking ones.
TEST_CUSTOMERS = 20
TEST_STATUS = "test"
INVOICES = 400
USERS = 40
NEWSLETTER_SUBSCRIBERS = 1_500
FIRST_NAMES = (
    "Ada", "Bruno", "Chidi", "Dana", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun",
    "Kemal", "Lena", "Mateo", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
)  # fmt: skip
LAST_NAMES = (
    "Abara", "Berg", "Costa", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Petrov", "Rossi", "Sato",
)  # fmt: skip
COUNTRIES = ("DE", "FR", "US", "GB", "NL", "ES", "IT", "JP", "BR", "NG")
VENDORS = ("ACME", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Corp")
ACCOUNTS = (
    ("operating", "Operating account", 4_000_000_00),
    ("payroll", "Payroll account", 1_200_000_00),
    ("reserve", "Reserve account", 250_000_00),
)


def seed(db: sqlite3.Connection) -> None:
    """Fill the empty tables, inside the caller's transaction."""
    rng = random.Random(SEED)
    db.executemany("INSERT INTO accounts VALUES (?, ?, ?)", ACCOUNTS)
    db.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", _customers(rng))
    db.executemany("INSERT INTO invoices VALUES (?, ?, ?, ?, ?)", _invoices(rng))
    users = _users(rng)
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", users)
    db.executemany("INSERT INTO user_roles VALUES (?, ?)", _roles(rng, users))
    db.executemany(
        "INSERT INTO mailing_list (list_name, email, name) VALUES (?, ?, ?)", _subscribers(rng)
    )
    seed_test_customers(db)


def seed_test_customers(db: sqlite3.Connection) -> None:
    """Add the test customers, numbered after the rows already there; no random draw, so
    the other tables stay as every earlier version seeded them."""
    db.executemany(
        "INSERT INTO customers (name, email, country, status, created_at)"
        " VALUES (?, ?, 'US', ?, '2026-01-01')",
        [
            (f"Test Customer {n}", f"test-customer-{n}@example.com", TEST_STATUS)
            for n in range(1, TEST_CUSTOMERS + 1)
        ],
    )


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def _customers(rng: random.Random) -> list[tuple[object, ...]]:
    rows = []
    for number in range(1, CUSTOMERS + 1):
        first, last = _name(rng)
        status = "inactive" if rng.random() < 0.15 else "active"
        created = f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        email = f"{first}.{last}.{number}@example.com".lower()
        rows.append((number, f"{first} {last}", email, rng.choice(COUNTRIES), status, created))
    return rows


def _invoices(rng: random.Random) -> list[tuple[object, ...]]:
    rows = []
    for number in range(1, INVOICES + 1):
        amount = rng.choice((rng.randint(100, 5_000), rng.randint(5_000, 60_000))) * 100
        status = "paid" if rng.random() < 0.6 else "open"
        due = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        rows.append((number, rng.choice(VENDORS), amount, status, due))
    return rows


def _users(rng: random.Random) -> list[tuple[object, ...]]:
    rows = []
    for number in range(1, USERS + 1):
        first, last = _name(rng)
        username = f"{first[0]}{last}{number}".lower()
        rows.append((number, username, f"{username}@example.org", 0 if rng.random() < 0.1 else 1))
    return rows


def _roles(rng: random.Random, users: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for _, username, _, _ in users:
        rows.append((username, "viewer"))
        if rng.random() < 0.4:
            rows.append((username, rng.choice(("support", "billing"))))
        if rng.random() < 0.08:
            rows.append((username, "admin"))
    return rows


def _subscribers(rng: random.Random) -> list[tuple[object, ...]]:
    rows = []
    for number in range(1, NEWSLETTER_SUBSCRIBERS + 1):
        first, last = _name(rng)
        rows.append(("newsletter", f"reader{number}@example.com", f"{first} {last}"))
    for number in range(1, 13):
        first, last = _name(rng)
        rows.append(("beta-testers", f"tester{number}@example.org", f"{first} {last}"))
    return rows
