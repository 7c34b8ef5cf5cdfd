"""Which project a Slurm account charges: explicit maps, else the project's name.

Slurm keeps account names lower-case, so accounts are compared lower-case with
project names; an account map sends an account to a project of another name.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allocation.models import NAME_LENGTH, AccountMap, Project
from tracker.fields import FieldError


def set_account_map(session: Session, account: str, project_name: str) -> AccountMap:
    """Map ``account`` to the project named ``project_name`` (case-insensitive)."""
    account = account.strip().lower()
    if not account or len(account) > NAME_LENGTH or any(c.isspace() for c in account):
        raise FieldError(
            "account", f"must be 1 to {NAME_LENGTH} characters without spaces"
        )
    projects = session.scalars(
        select(Project).where(func.lower(Project.name) == project_name.strip().lower())
    ).all()
    if len(projects) != 1:
        raise FieldError(
            "project",
            f"no project named {project_name!r}"
            if not projects
            else f"several projects are named {project_name!r} in different cases",
        )
    mapping = session.scalar(select(AccountMap).where(AccountMap.account == account))
    if mapping is None:
        mapping = AccountMap(account=account, project_id=projects[0].id)
        session.add(mapping)
    else:
        mapping.project_id = projects[0].id
    session.flush()
    return mapping


def remove_account_map(session: Session, account: str) -> bool:
    """Remove the map of ``account``; False if there was none."""
    mapping = session.scalar(
        select(AccountMap).where(AccountMap.account == account.strip().lower())
    )
    if mapping is None:
        return False
    session.delete(mapping)
    session.flush()
    return True


def account_maps(session: Session) -> list[tuple[str, str]]:
    """Return (account, project name) for every map, by account."""
    return list(
        session.execute(
            select(AccountMap.account, Project.name)
            .join(Project, Project.id == AccountMap.project_id)
            .order_by(AccountMap.account)
        ).tuples()
    )


def accounts_of_projects(session: Session) -> dict[int, list[str]]:
    """Return {project id: the Slurm accounts that charge it}, lower-case."""
    found: dict[int, list[str]] = {}
    mapped = set()
    for account, project_id in session.execute(
        select(AccountMap.account, AccountMap.project_id).order_by(AccountMap.account)
    ):
        found.setdefault(project_id, []).append(account)
        mapped.add(account)
    for project_id, name in session.execute(select(Project.id, Project.name)):
        if name.lower() not in mapped:
            found.setdefault(project_id, []).insert(0, name.lower())
    return found
