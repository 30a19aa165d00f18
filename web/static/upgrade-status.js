// Follow the upgrade on the Upgrade page: poll its status every 2 s and update the step list in place (a script
// file, not inline: the console's CSP forbids inline scripts). Without scripts the page's Refresh link does it.
const live = document.querySelector("[data-upgrade-live]");
if (live) {
  const POLL_MS = 2000;
  // A request that hangs must not stop the polling: it is given up and tried again.
  const REQUEST_TIMEOUT_MS = 10000;
  const status = live.querySelector("[data-upgrade-status]");
  const changed = document.getElementById("upgrade-changed");

  const showSteps = (steps) => {
    for (const step of steps) {
      const row = live.querySelector(`tr[data-step="${step.name}"]`);
      if (!row) continue;
      const state = row.querySelector('[data-field="state"]');
      state.textContent = step.text;
      state.className = `state-${step.state}`;
      row.querySelector('[data-field="seconds"]').textContent = step.seconds;
    }
  };

  const tick = async () => {
    try {
      const res = await fetch(live.dataset.upgradeLive, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      if (res.ok) {
        const { upgrade } = await res.json();
        if (!upgrade || String(upgrade.id) !== live.dataset.upgradeId) {
          // Another upgrade is now the latest: this page's actions and report are for the old one.
          if (changed) changed.hidden = false;
          return;
        }
        showSteps(upgrade.steps);
        if (status) status.textContent = upgrade.statusText;
        // The buttons depend on the status: say so rather than reload under the user's hands.
        if (changed && upgrade.status !== live.dataset.status) changed.hidden = false;
        if (upgrade.finished) return;
      }
    } catch {
      // The agent may be restarting during an upgrade: keep trying.
    }
    setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}
