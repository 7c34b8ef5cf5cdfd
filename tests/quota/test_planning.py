"""The plan: reserve withheld, a fair floor for quiet clients, weights and caps."""

from quota.controller import Policy
from quota.planning import ClientState, plan


def state(id_, count=0, rate=0.0, reachable=True, assumed=None, **extra):
    return ClientState(
        id_, reachable, count, count if assumed is None else assumed, rate, **extra
    )


def test_a_quiet_new_client_gets_the_floor_while_busy_ones_get_the_rest():
    # As seen in the field: 56 records an hour against a base weight of 1.
    clients = [state(1, 50, rate=56), state(2, 50, rate=56), state(3, 0, rate=0)]
    ceilings = plan(200, clients, floor=5)
    assert ceilings[3] >= 5
    assert sum(ceilings.values()) == 200


def test_below_the_floor_for_everyone_the_headroom_is_split_evenly():
    clients = [state(i, 10) for i in range(1, 5)]  # 40 created, 6 left for 4
    ceilings = plan(46, clients, floor=5)
    rooms = sorted(ceilings[i] - 10 for i in ceilings)
    assert rooms == [1, 1, 2, 2]


def test_the_reserve_is_withheld_and_approvals_come_out_of_it():
    clients = [state(1, 10), state(2, 10)]
    assert sum(plan(100, clients, reserve=10).values()) == 90
    approved = [state(1, 10, approved=4, assumed=14), state(2, 10)]
    ceilings = plan(100, approved, reserve=10)
    # 4 approved and not used are held; 6 of the reserve stay withheld.
    assert sum(ceilings.values()) + 4 + 6 == 100


def test_weights_maxima_and_inactive_clients():
    clients = [
        state(1, 0, weight=3.0),
        state(2, 0, weight=1.0),
        state(3, 0, max_ceiling=5),
        state(4, 7, active=False),
    ]
    ceilings = plan(112, clients)
    assert ceilings[3] == 5
    assert ceilings[4] == 7  # keeps what it created, nothing more
    assert ceilings[1] == 3 * ceilings[2]
    assert sum(ceilings.values()) == 112


def test_unreachable_clients_keep_what_they_may_have():
    clients = [state(1, 0), state(2, 0, reachable=False, assumed=60)]
    assert plan(100, clients, floor=5) == {1: 40}


def test_the_reserve_setting_is_a_count_or_a_percentage():
    assert Policy(reserve="5%").reserve_for(1000) == 50
    assert Policy(reserve=20).reserve_for(1000) == 20
    assert Policy(reserve=20).reserve_for(10) == 10
