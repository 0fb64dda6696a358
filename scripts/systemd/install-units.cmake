# install-units.cmake - run by 'cmake --install' (install(SCRIPT) in
# CMakeLists.txt): writes the systemd units with the installed binary's
# path, for the prefix given at install time, and installs them (DESTDIR
# honoured by file(INSTALL)). Set beforehand: TIERFS_UNIT_SOURCES,
# TIERFS_UNIT_BUILD_DIR, TIERFS_BINDIR, TIERFS_SYSTEMD_PKG_UNITDIR,
# TIERFS_SYSTEMD_UNITDIR.
if(IS_ABSOLUTE "${TIERFS_BINDIR}")
  set(bindir "${TIERFS_BINDIR}")
else()
  set(bindir "${CMAKE_INSTALL_PREFIX}/${TIERFS_BINDIR}")
endif()
if(TIERFS_SYSTEMD_UNITDIR)
  set(unitdir "${TIERFS_SYSTEMD_UNITDIR}")
elseif(CMAKE_INSTALL_PREFIX STREQUAL "/usr" AND TIERFS_SYSTEMD_PKG_UNITDIR)
  set(unitdir "${TIERFS_SYSTEMD_PKG_UNITDIR}")
else()
  set(unitdir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
endif()
# one directory per destination, so that installs to two places at once
# (the tests) do not write each other's files
string(MD5 dest "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
set(TIERFS_UNIT_BUILD_DIR "${TIERFS_UNIT_BUILD_DIR}/${dest}")
set(units)
foreach(src IN LISTS TIERFS_UNIT_SOURCES)
  get_filename_component(name "${src}" NAME)
  string(REGEX REPLACE "\\.in$" "" name "${name}")
  configure_file("${src}" "${TIERFS_UNIT_BUILD_DIR}/${name}" @ONLY)
  list(APPEND units "${TIERFS_UNIT_BUILD_DIR}/${name}")
endforeach()
file(INSTALL DESTINATION "${unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES ${units})
