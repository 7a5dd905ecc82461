// pidfile.h — one running instance per pid file; `stop` finds it there.
#pragma once

#include <string>

#include "result.h"

namespace onebox::pidfile {

// The pid recorded in path if that process is alive, else 0.
int running_pid(const std::string& path);
// Writes our pid (creating the directory). Fails if another live instance owns it.
Status claim(const std::string& path);
void release(const std::string& path);

}  // namespace onebox::pidfile
