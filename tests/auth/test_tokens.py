"""API tokens expire, can be revoked from one's Account page, and keep their
last use; an expired or revoked token answers JSON 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.support import csrf_token


def token_row(db):
    from tracker.auth.models import ApiToken

    return db.scalar(select(ApiToken))


def test_a_new_token_expires_in_a_year_by_default(db, token):
    from tracker.db_types import utcnow

    row = token_row(db)
    assert timedelta(days=364) < row.expires - utcnow() <= timedelta(days=365)
    assert row.last_used is None


def test_use_is_recorded(client, db, auth_headers):
    assert client.get("/api/instances", headers=auth_headers).status_code == 200
    assert token_row(db).last_used is not None


@pytest.mark.parametrize("change", ["expired", "revoked"])
def test_an_expired_or_revoked_token_answers_json_401(client, db, auth_headers, change):
    from tracker.auth.models import ApiToken
    from tracker.db_types import utcnow

    with db.session() as session:
        row = session.scalar(select(ApiToken))
        if change == "expired":
            row.expires = utcnow() - timedelta(seconds=1)
        else:
            row.revoked = utcnow()
        session.commit()
    response = client.get("/api/instances", headers=auth_headers)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "Unauthorized",
        "message": "the token is unknown, expired or revoked",
    }
    # Nor does it sign a page in.
    assert client.get("/", headers=auth_headers).status_code == 302


def test_the_account_page_lists_ones_tokens_and_revokes_one(
    signed_in, db, user, token, auth_headers
):
    from tracker.auth.models import ApiToken, User
    from tracker.auth.tokens import issue_token

    assert signed_in.get("/api/instances", headers=auth_headers).status_code == 200
    with db.session() as session:
        other = User(username="grace")
        other.set_password("grace-hopper-pass")
        session.add(other)
        issue_token(session, other, "not yours")
        session.commit()
    page = signed_in.get("/account").get_data(as_text=True)
    assert "tests" in page and "not yours" not in page
    assert "never" not in page.split('data-token-id="1"')[1].split("</tr>")[0]
    mine = token_row(db).id
    form = csrf_token(signed_in, "/account")
    response = signed_in.post(
        f"/account/tokens/{mine}/revoke", data={"csrf_token": form}
    )
    assert response.status_code == 302
    assert db.scalar(select(ApiToken.revoked).where(ApiToken.id == mine)) is not None
    assert signed_in.get("/api/instances", headers=auth_headers).status_code == 401
    assert "revoked" in signed_in.get("/account").get_data(as_text=True)


def test_someone_elses_token_cannot_be_revoked(signed_in, db):
    from tracker.auth.models import ApiToken, User
    from tracker.auth.tokens import issue_token

    with db.session() as session:
        other = User(username="grace")
        other.set_password("grace-hopper-pass")
        session.add(other)
        issue_token(session, other, "hers")
        session.commit()
    theirs = token_row(db).id
    form = csrf_token(signed_in, "/account")
    response = signed_in.post(
        f"/account/tokens/{theirs}/revoke", data={"csrf_token": form}
    )
    assert response.status_code == 404
    assert db.scalar(select(ApiToken.revoked)) is None
