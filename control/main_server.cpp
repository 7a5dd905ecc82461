#include "cli.h"
int main(int argc, char** argv) { return onebox::run_cli(onebox::proto::Role::Server, argc, argv); }
