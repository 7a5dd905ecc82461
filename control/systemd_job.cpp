// systemd_job.cpp — see systemd_job.h.
#include "systemd_job.h"

#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace onebox::systemd_job {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr uint64_t kCallTimeoutUs = 1'000'000;  // a stop must not hang on the bus

struct Bus {
    sd_bus* bus = nullptr;
    ~Bus() { sd_bus_flush_close_unref(bus); }
};

struct Reply {
    sd_bus_message* m = nullptr;
    sd_bus_error error = SD_BUS_ERROR_NULL;
    ~Reply() {
        sd_bus_message_unref(m);
        sd_bus_error_free(&error);
    }
    // The bus's own error name and text say more than the errno.
    Status fail(int r, const char* what) const {
        if (sd_bus_error_is_set(&error)) return Status::fail_because(-r, what, error.message ? error.message : error.name);
        return Status::fail(-r, what);
    }
};

Status unit_of_pid(sd_bus* bus, std::string& unit) {
    Reply reply;
    int r = sd_bus_call_method(bus, kSystemd, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                               "GetUnitByPID", &reply.error, &reply.m, "u", uint32_t(getpid()));
    if (r < 0) return reply.fail(r, "ask systemd for the unit of our pid");
    const char* path = nullptr;
    if ((r = sd_bus_message_read(reply.m, "o", &path)) < 0) return reply.fail(r, "read systemd's GetUnitByPID reply");
    unit = path;
    return {};
}

// The unit's pending job, "" if none (job id 0).
Status job_of_unit(sd_bus* bus, const std::string& unit, std::string& job) {
    Reply reply;
    int r = sd_bus_get_property(bus, kSystemd, unit.c_str(), "org.freedesktop.systemd1.Unit", "Job", &reply.error,
                                &reply.m, "(uo)");
    if (r < 0) return reply.fail(r, "ask systemd for our unit's job");
    uint32_t id = 0;
    const char* path = nullptr;
    if ((r = sd_bus_message_read(reply.m, "(uo)", &id, &path)) < 0) return reply.fail(r, "read our unit's job");
    job = id == 0 ? "" : path;
    return {};
}

Status type_of_job(sd_bus* bus, const std::string& job, std::string& type) {
    Reply reply;
    char* s = nullptr;
    int r = sd_bus_get_property_string(bus, kSystemd, job.c_str(), "org.freedesktop.systemd1.Job", "JobType",
                                       &reply.error, &s);
    if (r < 0) return reply.fail(r, "ask systemd for our job's type");
    type = s;
    std::free(s);
    return {};
}

}  // namespace

Status restart_pending(bool& restarting) {
    restarting = false;
    if (!std::getenv("INVOCATION_ID")) return {};
    Bus b;
    int r = sd_bus_open_system(&b.bus);
    if (r >= 0) r = sd_bus_set_method_call_timeout(b.bus, kCallTimeoutUs);
    if (r < 0) return Status::fail(-r, "connect to the system bus");
    std::string unit, job, type;
    if (Status s = unit_of_pid(b.bus, unit); !s.ok()) return s;
    if (Status s = job_of_unit(b.bus, unit, job); !s.ok() || job.empty()) return s;
    if (Status s = type_of_job(b.bus, job, type); !s.ok()) return s;
    // try-restart and reload-or-restart run as "restart" once queued.
    restarting = type == "restart";
    return {};
}

}  // namespace onebox::systemd_job
