"""A real broker's fills for one bot, asked for on every bar (a simulated broker's come from
its match of the bar instead).

Each poll asks for the fills since the previous poll's time less `overlap`: a fill the
broker lists late (its user sync or REST list a moment behind), or stamps by a clock behind
ours, is still in the next answer. A fill this poll handed over before is not handed over
again (a bar that fails ends the runner, so a fill handed over was applied, or the runner
that took it is gone), and the order manager applies each fill id once besides. The
broker's account may be shared: only the bot's own orders' fills (client_id_prefix) are
taken. A read that fails (the broker timed out or is unreachable) hands nothing over and
leaves `since` where it was: the runner orders nothing on that bar (RunnerCore's blind
bar), asks again on every watchdog tick, and the read that succeeds covers the gap.

Between bars (`between_bars`, on the runner's watchdog tick), a broker that can tell
cheaply that it learnt of a fill (`fill_revision`: Tradovate's user sync) is asked too, so a
filled entry gets its protective exits, and a filled exit cancels its twin, within a second
rather than at the next bar.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botwarden.clock import Clock
from botwarden.domain.orders import client_id_prefix
from botwarden.trading.brokers.base import Broker, FillReport

FILL_POLL_OVERLAP = timedelta(minutes=5)


class FillPoll:
    def __init__(self, broker: Broker, bot_id: str, clock: Clock,
                 overlap: timedelta = FILL_POLL_OVERLAP) -> None:
        self.broker = broker
        self.prefix = client_id_prefix(bot_id)
        self.clock = clock
        self.overlap = overlap
        self.since: datetime | None = None
        self._handed: dict[str, datetime] = {}  # fill id -> its time, while it can recur
        self._revision: int | None = None

    def __call__(self, _bar: Any = None) -> list[FillReport]:
        polled_at = self.clock()
        reports = self.broker.fills(self.since)
        new = [r for r in reports
               if r.client_order_id.startswith(self.prefix) and r.fill_id not in self._handed]
        for report in new:
            self._handed[report.fill_id] = report.at
        self.since = polled_at - self.overlap
        since = self.since
        self._handed = {k: at for k, at in self._handed.items() if at >= since}
        return new

    def between_bars(self) -> list[FillReport]:
        """The fills the broker learnt of since it was last asked, when its `fill_revision`
        moved; [] when it did not, or when the broker cannot tell without a request."""
        revision_of = getattr(self.broker, "fill_revision", None)
        revision = revision_of() if callable(revision_of) else None
        if revision is None or revision == self._revision:
            return []
        self._revision = revision  # read before asking: a fill meanwhile moves it again
        return self()
