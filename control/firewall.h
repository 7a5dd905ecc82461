// firewall.h — onebox's own nftables table, through libnftables.
//
// onebox never edits anyone else's rules: it adds one table per role
// ("ip onebox-client" / "ip onebox-server") and deletes that table on exit
// or at the next start after a crash.
#pragma once

#include <cstdint>
#include <string>

#include "result.h"

namespace onebox::firewall {

// Server: masquerade packets from the tunnel subnet leaving by any interface
// other than the TUN (or only by nat_interface if not empty).
Status install_server(const std::string& tun, uint32_t subnet, int prefix,
                      const std::string& nat_interface);
// Same, with masquerading optional ([server] masquerade = false): the table
// then only clamps TCP MSS on traffic through the TUN.
Status install_server(const std::string& tun, uint32_t subnet, int prefix,
                      const std::string& nat_interface, bool masquerade);
// Client: masquerade everything leaving by the TUN (LAN hosts appear as the
// client's tunnel address) and clamp TCP MSS to the TUN's path MTU.
Status install_client(const std::string& tun, bool masquerade_lan);
// Deletes the role's table if it exists (success if it does not).
Status remove(bool server);
bool table_exists(bool server);

}  // namespace onebox::firewall
