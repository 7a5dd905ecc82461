// systemd_standin — the three pieces of systemd's D-Bus API that
// onebox-server asks at stop (control/systemd_job.cpp), on the test's private
// system bus: there is no systemd as PID 1 in the lab to restart a unit.
//
//   systemd_standin JOBTYPE [UNIT]
//
// Owns org.freedesktop.systemd1. Manager.GetUnitByPID answers UNIT
// (onebox-server.service) for any pid; that unit's Job is job 1 of type
// JOBTYPE ("restart", "stop", ...), or no job (0, "/") for "none". Prints
// "ready" when it owns the name and one line per call it answered, so the
// test sees that the server asked.
#include <systemd/sd-bus.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

std::string job_type;
std::string unit_path;
constexpr const char* kJobPath = "/org/freedesktop/systemd1/job/1";

// systemd's object path escaping: [A-Za-z0-9] as they are, the rest _xx.
std::string escape_unit(const char* unit) {
    std::string out = "/org/freedesktop/systemd1/unit/";
    for (const char* p = unit; *p; ++p) {
        unsigned char c = static_cast<unsigned char>(*p);
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            out += char(c);
        } else {
            char hex[4];
            std::snprintf(hex, sizeof hex, "_%02x", c);
            out += hex;
        }
    }
    return out;
}

int get_unit_by_pid(sd_bus_message* m, void*, sd_bus_error*) {
    uint32_t pid = 0;
    int r = sd_bus_message_read(m, "u", &pid);
    if (r < 0) return r;
    std::printf("GetUnitByPID %u\n", pid);
    std::fflush(stdout);
    return sd_bus_reply_method_return(m, "o", unit_path.c_str());
}

int unit_job(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void*, sd_bus_error*) {
    std::printf("Unit.Job\n");
    std::fflush(stdout);
    if (job_type == "none") return sd_bus_message_append(reply, "(uo)", uint32_t(0), "/");
    return sd_bus_message_append(reply, "(uo)", uint32_t(1), kJobPath);
}

int job_type_property(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void*, sd_bus_error*) {
    std::printf("Job.JobType %s\n", job_type.c_str());
    std::fflush(stdout);
    return sd_bus_message_append(reply, "s", job_type.c_str());
}

const sd_bus_vtable kManager[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("GetUnitByPID", "u", "o", get_unit_by_pid, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};
const sd_bus_vtable kUnit[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Job", "(uo)", unit_job, 0, 0),
    SD_BUS_VTABLE_END,
};
const sd_bus_vtable kJob[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("JobType", "s", job_type_property, 0, 0),
    SD_BUS_VTABLE_END,
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: systemd_standin JOBTYPE [UNIT]\n");
        return 2;
    }
    job_type = argv[1];
    unit_path = escape_unit(argc == 3 ? argv[2] : "onebox-server.service");
    sd_bus* bus = nullptr;
    int r = sd_bus_open_system(&bus);
    if (r >= 0) r = sd_bus_add_object_vtable(bus, nullptr, "/org/freedesktop/systemd1",
                                             "org.freedesktop.systemd1.Manager", kManager, nullptr);
    if (r >= 0) r = sd_bus_add_object_vtable(bus, nullptr, unit_path.c_str(), "org.freedesktop.systemd1.Unit", kUnit,
                                             nullptr);
    if (r >= 0) r = sd_bus_add_object_vtable(bus, nullptr, kJobPath, "org.freedesktop.systemd1.Job", kJob, nullptr);
    if (r >= 0) r = sd_bus_request_name(bus, "org.freedesktop.systemd1", 0);
    if (r < 0) {
        std::fprintf(stderr, "systemd_standin: %s\n", std::strerror(-r));
        return 1;
    }
    std::printf("ready\n");
    std::fflush(stdout);
    for (;;) {
        r = sd_bus_process(bus, nullptr);
        if (r < 0) break;
        if (r > 0) continue;
        if ((r = sd_bus_wait(bus, UINT64_MAX)) < 0) break;
    }
    std::fprintf(stderr, "systemd_standin: %s\n", std::strerror(-r));
    sd_bus_flush_close_unref(bus);
    return 1;
}
