"""Sign-in timing: does the time of a failed sign-in tell whether the user name
exists?  ``python -m bench.signin [--tries N]``

Signs in through the real form (CSRF token and all) with the default password
hash (scrypt): N wrong passwords for a real user, N for unknown user names, and
N correct sign-ins as the baseline; prints the median of each and the ratio of
unknown to known (1.0: nothing to learn from the time).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import bounded_int
from tracker import create_app
from tracker.auth.models import User
from tracker.extensions import db

PASSWORD = "bench-sign-in-password"
CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')


def timed_sign_in(app, username: str, password: str) -> float:
    client = app.test_client()
    token = CSRF.search(client.get("/login").get_data(as_text=True)).group(1)
    started = time.perf_counter()
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == (302 if password == PASSWORD else 200)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=bounded_int(3, 1000), default=15)
    tries = parser.parse_args().tries
    with tempfile.TemporaryDirectory(prefix="bench-signin-") as folder:
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.sqlite",
                "SECRET_KEY": "bench-sign-in-secret-key-of-32-bytes",
                "LOGIN_RATE_LIMIT": None,
            },
            instance_path=Path(folder) / "instance",
            environ={},
        )
        with app.app_context():
            db.create_all()
            user = User(username="ada")
            user.set_password(PASSWORD)
            db.session.add(user)
            db.session.commit()
        timed_sign_in(app, "warm-up", "wrong")
        correct, known, unknown = [], [], []
        # Interleaved, so that a busy machine slows each kind alike.
        for n in range(tries):
            correct.append(timed_sign_in(app, "ada", PASSWORD))
            known.append(timed_sign_in(app, "ada", "wrong"))
            unknown.append(timed_sign_in(app, f"nobody{n}", "wrong"))
        with app.app_context():
            db.engine.dispose()
    medians = {
        "correct password (baseline)": statistics.median(correct),
        "wrong password, real user": statistics.median(known),
        "wrong password, unknown user": statistics.median(unknown),
    }
    print(f"sign-ins through the form, {tries} of each, scrypt (the default):")
    for label, seconds in medians.items():
        print(f"  {label:<30} median {seconds * 1000:7.1f} ms")
    ratio = (
        medians["wrong password, unknown user"] / medians["wrong password, real user"]
    )
    print(f"  unknown / real user: {ratio:.2f} (1.00: the time tells nothing)")


if __name__ == "__main__":
    main()
