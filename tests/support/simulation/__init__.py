"""A seeded model simulation of the whole order flow, on moto, with the real code.

Each sequence starts from fresh tables built from template.yaml, 2 to 4 random lending
lines (limits, daily caps, amount ranges, hold times, product and grade rules, time
zones) and three tenants with random routing policies. Then it takes random steps:

- orders submitted through the API handler, again with the same content (a retried
  intake) and again with different content (409);
- the Orders stream, read with the DynamoDB Streams API and filtered as the template's
  MatcherFunction filter says, delivered to the matcher handler in small batches,
  sometimes with a duplicate, sometimes lost (the reconciler must then re-drive the
  order), and old images redelivered after the order moved on;
- order events through the API handler: valid ones with random partial amounts,
  ones the state does not allow, amounts above what is held, events for unknown
  orders, an earlier eventId again (same answer, nothing written) and an earlier
  eventId with other content (409);
- time passing, past holds, with and without the scheduled reconciler;
- lines reconfigured through the API (limit lowered, even below what is held, or
  raised, paused, resumed, daily cap changed);
- and faults (tests/faults, on the client's botocore event hooks) where a write
  commits but its caller does not learn it: the response is lost (InternalServerError,
  a read timeout, a closed connection), or no connection is made at all, and the
  caller retries (the API client resends, Lambda redelivers the stream batch, the
  schedule runs the reconciler again), or the SDK itself resends the committed write.

A model follows every change the Orders stream shows (old and new image of every
write, in commit order) and refuses any that the design does not allow. After every
step the stored items are compared with the model and with docs/design.md's invariant:

- each line's `reserved` is the sum of its MATCHED and APPROVED orders' reservations,
  its `drawn` the sum of its DISBURSED orders' outstanding principal, `held` is
  their sum, and `reserved + drawn <= limit` unless an operator lowered the limit
  below it (tracked until it fits again);
- each order holds at most one line, and only in MATCHED, APPROVED, DISBURSED;
- a claim fits the line's limit, daily cap (on the claim's local day), amount range,
  rules and status at claim time; with freshly read lines, the matcher's choice is
  the line the tenant's policy ranks first, and UNMATCHED only when no line fits;
- statuses move only along docs/design.md's arrows, one version at a time, and history
  only grows: the order item keeps its newest entries (the bound made small here, so
  entries move out often) and each older one is an item of its own, exactly once;
- no accepted order is lost, and nothing is stored that the model does not expect;
- money is conserved per order: everything ever reserved for it is still reserved,
  outstanding, repaid, or released, as its history says;
- holds past their time are expired, and waiting orders re-driven, by the next
  reconciler run, whose audit never reports drift.

Every answer is checked too: 202/200/409/404/422 as docs/api.md says, a 500 or a failed
stream record only ever right after an injected fault, a repeated event answered
with the order as it stands (its event record keeps the version the event made).

A failure names its seed and step and the steps before it; FUNDROUTER_SIM_SEED=<seed>
replays that sequence alone. FUNDROUTER_SIM_STEPS sets the total number of steps
(default 10,000), FUNDROUTER_SIM_STEPS_PER_SEED the length of one sequence, and
FUNDROUTER_SIM_FIRST_SEED where the seeds start, to explore new ones.

The service code runs as it is. moto is made cheaper in three places (see
speed_up_moto), and tests/handlers/test_model_simulation.py runs one sequence with
and without that and finds the same steps and the same stored items. The bug it
found (a daily cap lowered under a warm matcher) has its own regression test there.

The modules: model (what the design allows), inputs (random lines, orders and the API
events that carry them), driver (the tables, the stream and the handlers, called as
Lambda calls them), steps, follow (the model following the stream) and checks (the
stored items against the model after every step).
"""

from tests.support.simulation.checks import StoredState
from tests.support.simulation.driver import Driver
from tests.support.simulation.follow import Follower
from tests.support.simulation.steps import Steps


class Simulation(Steps, Follower, StoredState, Driver):
    """One seeded sequence on its own pair of tables."""
