"""The crawlability rule: its Python and SQL forms agree on every instance."""

from __future__ import annotations

import itertools

import pytest

from tracker.extensions import db
from tracker.instances.crawlability import (
    AWAITS_APPROVAL,
    DISABLED,
    crawl_refusal,
)
from tracker.instances.crawling import crawlable_ids
from tracker.instances.models import Instance


def test_refusals_name_the_reason():
    instance = Instance(enabled=False, approved=False)
    assert crawl_refusal(instance, require_approval=True) == DISABLED
    instance.enabled = True
    assert crawl_refusal(instance, require_approval=True) == AWAITS_APPROVAL
    assert crawl_refusal(instance, require_approval=False) is None


@pytest.mark.parametrize("require_approval", [False, True])
def test_python_and_sql_forms_agree(app, require_approval):
    with app.app_context():
        instances = [
            Instance(
                url=f"https://{n}.example.org",
                contact="C",
                email="c@example.org",
                organisation="O",
                enabled=enabled,
                approved=approved,
            )
            for n, (enabled, approved) in enumerate(
                itertools.product([False, True], repeat=2)
            )
        ]
        db.session.add_all(instances)
        db.session.commit()
        by_rule = {
            i.id for i in instances if crawl_refusal(i, require_approval) is None
        }
        assert set(crawlable_ids(db.session, require_approval)) == by_rule
        assert by_rule  # an enabled, approved instance is always crawlable
