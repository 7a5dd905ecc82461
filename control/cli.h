// cli.h — the onebox-client / onebox-server command line.
#pragma once

#include "../proto/config.h"

namespace onebox {
int run_cli(proto::Role role, int argc, char** argv);
}
