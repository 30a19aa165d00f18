import { agentRollbackFile, agentTrialFile } from "../appliance/agent-upgrade/agent-trial.ts";
import { currentLinkOf, type InstallPaths } from "./install-layout.ts";

/**
 * agent-guard.sh: run by plum.service before every agent start (ExecStartPre), and once at the deadline of an
 * agent upgrade's trial (a transient timer the upgrading agent starts with systemd-run). It is plain sh written
 * by the installer, outside every release, so a broken new agent cannot break its own rollback.
 *
 *   no trial                          → nothing to do
 *   trial, first start of the new one → let it start (counts the start)
 *   trial still there at a later start (the new agent exited, or its start was not ready in time),
 *   or at the deadline                → /opt/plum/current back to the previous release, agent-rollback
 *                                       written for the previous agent to record, and (at the deadline) a restart
 *
 * The new agent ends its trial by removing the file once it serves; the files' format is in
 * appliance/agent-upgrade/agent-trial.ts.
 */
export function agentGuardScript(p: InstallPaths): string {
  const trial = agentTrialFile(p.home);
  const rollback = agentRollbackFile(p.home);
  const current = currentLinkOf(p);
  return `#!/bin/sh
# Written by plumctl install: the agent guard of ${p.unitName} (see installer/agent-guard.ts). Needs no release.
set -u
mode="\${1:-start}"
trial='${trial}'
[ -f "$trial" ] || exit 0
field() { sed -n "s/^$1=//p" "$trial" | head -n 1; }
from=$(field from); to=$(field to); starts=$(field starts); upgrade=$(field upgrade)
serving=$(readlink '${current}' || true)
# Switched by hand meanwhile, or a trial of nothing: not ours to judge.
if [ -z "$from" ] || [ -z "$to" ] || [ "$serving" != "$to" ]; then rm -f "$trial"; exit 0; fi
if [ "$mode" = start ] && [ "\${starts:-0}" = 0 ]; then
  sed -i 's/^starts=.*/starts=1/' "$trial"
  echo "plum agent guard: first start of the new agent $to (on trial, previous $from)"
  exit 0
fi
if [ "$mode" = deadline ]; then
  reason="the new agent $to was not serving at the trial's deadline"
else
  reason="the new agent $to did not come up (it exited, or was not ready in time)"
fi
if [ ! -d '${p.optDir}'/"$from" ]; then
  echo "plum agent guard: $reason, but ${p.optDir}/$from is gone: cannot switch back" >&2
  exit 0
fi
ln -sfn "$from" '${current}.guard' && mv -T '${current}.guard' '${current}'
umask 077
printf 'from=%s\\nto=%s\\nupgrade=%s\\nreason=%s\\nat=%s\\n' "$to" "$from" "$upgrade" "$reason" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > '${rollback}'
rm -f "$trial"
echo "plum agent guard: $reason: ${current} is back on $from"
if [ "$mode" = deadline ]; then systemctl restart --no-block '${p.unitName}'; fi
exit 0
`;
}
