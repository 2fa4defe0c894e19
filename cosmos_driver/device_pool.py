"""The GPU devices of the SSH hosts, under a lock of their own: which run holds each device,
which run is staged to follow it, and which hosts are set aside. The handover (a successor
staged while the holder runs) is kept here; no method touches the run store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cosmos_driver.run.types import DriverStopping, Placement, PreparedRun


@dataclass
class Device:
    """One GPU: the run whose container uses it, and the run staged to follow it."""

    index: str
    holder: str | None = None
    holder_container: str | None = None
    successor: str | None = None


@dataclass
class Host:
    """One SSH host: its devices, and whether it answers."""

    name: str
    devices: list[Device] = field(default_factory=list)
    healthy: bool = True

    def pick(self, gpus: int) -> list[Device] | None:
        """`gpus` devices without a successor, free ones first; None if too few."""
        open_devices = [d for d in self.devices if d.successor is None]
        open_devices.sort(key=lambda d: d.holder is not None)
        return open_devices[:gpus] if len(open_devices) >= gpus else None

    def busy(self) -> int:
        return sum(1 for d in self.devices if d.holder)


class DevicePool:
    """Devices per host; `on_hosts` sees every change (the progress display)."""

    def __init__(self, gpu_counts: dict[str, int]) -> None:
        # A host with no GPU (cosmos_gpu_count: 0) stays known, for runs found on it, but
        # no run fits it.
        self.hosts = {
            name: Host(name, [Device(str(i)) for i in range(max(count, 0))])
            for name, count in gpu_counts.items()
        }
        self.down_reasons: dict[str, str] = {}
        self.cond = threading.Condition()
        self.on_hosts: Callable[[dict[str, Host]], None] | None = None
        self.on_change: Callable[[], None] | None = None

    @property
    def slots(self) -> int:
        return sum(len(h.devices) for h in self.hosts.values())

    def fit(self, run: PreparedRun, only: frozenset[str] | None) -> Placement | None:
        """Reserve devices on the least busy healthy host that has room (among `only`)."""
        with self.cond:
            hosts = [h for h in self.hosts.values() if h.healthy]
            hosts = [h for h in hosts if only is None or h.name in only]
            for host in sorted(hosts, key=Host.busy):
                devices = host.pick(run.job.gpus)
                if devices is None:
                    continue
                for device in devices:
                    if device.holder:
                        device.successor = run.run_id
                    else:
                        device.holder = run.run_id
                return Placement(host.name, tuple(d.index for d in devices))
        return None

    def claim(self, run_id: str, container: str, placement: Placement) -> None:
        """Mark the devices of a run found running as held by it."""
        with self.cond:
            host = self.hosts.get(placement.host)
            for device in host.devices if host else []:
                if device.index in placement.devices and device.holder is None:
                    device.holder, device.holder_container = run_id, container

    def await_holders(
        self, run: PreparedRun, placement: Placement, stop: threading.Event
    ) -> Placement:
        """Block until the holder of each of the run's devices has started (or left): only
        then does `after` name every container the run must outlast on the host."""
        mine = [d for d in self.hosts[placement.host].devices if d.index in placement.devices]

        def holders_known() -> bool:
            return all(d.holder in (None, run.run_id) or d.holder_container for d in mine)

        with self.cond:
            while not holders_known():
                if stop.is_set():
                    raise DriverStopping(run.run_id)
                self.cond.wait(0.5)
            for device in mine:
                if device.holder is None:
                    device.holder = run.run_id
                    if device.successor == run.run_id:
                        device.successor = None
            after = {d.holder_container for d in mine if d.holder != run.run_id}
        return replace(placement, after=tuple(sorted(a for a in after if a)))

    def started(self, run: PreparedRun, placement: Placement) -> None:
        with self.cond:
            for device in self.hosts[placement.host].devices:
                if device.index in placement.devices:
                    device.holder = run.run_id
                    device.holder_container = run.container_name
                    if device.successor == run.run_id:  # a run staged after it stays
                        device.successor = None
            self.cond.notify_all()
        self._changed()

    def release(self, run_id: str) -> None:
        with self.cond:
            for host in self.hosts.values():
                for device in host.devices:
                    if device.holder == run_id:
                        device.holder = device.holder_container = None
                    if device.successor == run_id:
                        device.successor = None
            self.cond.notify_all()
        self._changed()

    def set_aside(self, host: str, detail: str) -> bool:
        """No new run goes to `host`; True when it was healthy until now."""
        with self.cond:
            was_healthy = self.hosts[host].healthy
            self.hosts[host].healthy = False
            self.down_reasons[host] = detail
            self.cond.notify_all()
        self._changed()
        return was_healthy

    def answers(self, host: str) -> bool:
        """`host` is healthy again; True when it had been set aside."""
        with self.cond:
            was_down = not self.hosts[host].healthy
            self.hosts[host].healthy = True
            self.cond.notify_all()
        self._changed()
        return was_down

    def fits_a_healthy_host(self, gpus: int) -> bool:
        with self.cond:
            return any(h.healthy and len(h.devices) >= gpus for h in self.hosts.values())

    def any_healthy(self) -> bool:
        with self.cond:
            return any(h.healthy for h in self.hosts.values())

    def unavailable(self, name: str) -> str | None:
        """Why `name` will take no run: unknown, no GPU, or set aside with nothing running
        (a busy host set aside comes back when its runs' waits get through)."""
        with self.cond:
            host = self.hosts.get(name)
            if host is not None and host.devices and (host.healthy or host.busy()):
                return None
            if host is not None and not host.devices:
                return "it has no GPU slot (cosmos_gpu_count: 0)"
            return self.down_reasons.get(name, "not in the inventory")

    def down_summary(self) -> str:
        with self.cond:
            return "; ".join(f"{h}: {why}" for h, why in sorted(self.down_reasons.items()))

    def _changed(self) -> None:
        """Tell the display and the scheduler, outside the lock."""
        if self.on_hosts:
            self.on_hosts(self.hosts)
        if self.on_change:
            self.on_change()


def record_host_use(hosts: dict[str, Host]) -> dict[str, str]:
    """`busy/total` GPU devices per host, for the progress display."""
    return {name: f"{h.busy()}/{len(h.devices)}" for name, h in hosts.items()}
