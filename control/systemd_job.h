// systemd_job.h — what systemd is doing to our unit, asked over the system bus.
#pragma once

#include <string>

#include "result.h"

namespace onebox::systemd_job {

// Is systemd stopping this process as the first half of a restart of its
// unit (`systemctl restart`, a package upgrade's try-restart)? Asked as
// systemd documents it on org.freedesktop.systemd1: the unit of our pid
// (Manager.GetUnitByPID), its pending job (Unit.Job) and that job's type
// (Job.JobType), "restart" while the stop half runs.
// Not started by systemd (no INVOCATION_ID in the environment): false, and
// no bus is touched. A failure (no bus, no systemd on it, a timeout) is
// returned, and the caller decides as if no restart were coming.
Status restart_pending(bool& restarting);

}  // namespace onebox::systemd_job
