# extra.cmake — run by cpack (CPACK_INSTALL_SCRIPTS) while it stages the .deb:
# the files only a Debian package carries. `cmake --install` and Yocto never
# run it. file(INSTALL) puts $ENV{DESTDIR} in front, as cmake_install.cmake does.
set(src ${CPACK_ONEBOX_SOURCE_DIR}/units/debian)
set(doc ${CPACK_PACKAGING_INSTALL_PREFIX}/share/doc/onebox)
set(tmp ${CPACK_TOPLEVEL_DIRECTORY}/onebox-extra)
file(MAKE_DIRECTORY ${tmp})
# changelog of a native package: /usr/share/doc/onebox/changelog.gz, gzip -9n.
execute_process(COMMAND ${CPACK_ONEBOX_GZIP} -9n -c ${src}/changelog
  OUTPUT_FILE ${tmp}/changelog.gz RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "extra.cmake: gzip of ${src}/changelog failed (${rc})")
endif()
file(INSTALL ${src}/copyright ${tmp}/changelog.gz DESTINATION ${doc}
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL ${src}/lintian-overrides DESTINATION ${CPACK_PACKAGING_INSTALL_PREFIX}/share/lintian/overrides
  RENAME onebox FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
