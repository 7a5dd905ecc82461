# Lab (integration) tests: each test/lab/<name>.sh builds its own network-namespace
# lab (ci/lab.sh) with a unique prefix, runs the daemons from ${CMAKE_BINARY_DIR}
# and tears everything down. They need root; without it they are skipped (77).
set(ONEBOX_LAB_TESTS
  ping:120
  http:300
  iperf:180
  lan:150
  wrong_psk:120
  forged:180
  cleanup:300
  two_clients:240
  server_restart:180
  emu:240
  client_restart:120
  multilink:180
  bonding:240
  failover:180
  modes:180
  notify:120
  caps:120
  dbus:180
  journal:120
  offloads:120
  pmtu:120
  workers:180
  privileges:120
  faults:300
  flood:180
  storage:120
  restart_tcp:180
  load:180
  rekey:120
  client_keys:120
  slow_path:120
  lossy_link:180
  queue_hold:120
)
foreach(entry ${ONEBOX_LAB_TESTS})
  string(REPLACE ":" ";" parts ${entry})
  list(GET parts 0 name)
  list(GET parts 1 timeout)
  add_test(NAME lab_${name} COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/${name}.sh)
  set_tests_properties(lab_${name} PROPERTIES
    ENVIRONMENT "ONEBOX_BUILD=${CMAKE_BINARY_DIR}"
    RESOURCE_LOCK lab
    TIMEOUT ${timeout}
    SKIP_RETURN_CODE 77
    LABELS lab)
endforeach()
