# The libraries herald links and where its library's sources are, for the
# top-level build and fuzz/ (a project of its own): one list, so a new
# dependency or a new binary's main is named once.
#
# Sets HERALD_LIBRARIES (link these), ETPAN_INCLUDE_DIR (a private include
# directory) and HERALD_SOURCES (src/*.c without the binaries' mains:
# herald.c, herald_*.c and heraldd.c). HERALD_ROOT must be the source root.
find_package(PkgConfig REQUIRED)
pkg_check_modules(YAML REQUIRED IMPORTED_TARGET yaml-0.1)
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
pkg_check_modules(ICU REQUIRED IMPORTED_TARGET icu-i18n icu-uc)
pkg_check_modules(SQLITE REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
# the PostgreSQL store (store_pg*.c): libpq, Debian libpq-dev
pkg_check_modules(PQ REQUIRED IMPORTED_TARGET libpq)
# libetpan's pkg-config file adds a no-PIE specs file to the link line;
# the shared library needs nothing but -letpan, so link it directly.
find_path(ETPAN_INCLUDE_DIR libetpan/libetpan.h REQUIRED)
find_library(ETPAN_LIBRARY etpan REQUIRED)
# herald-web's HTTP(S) server (web.c): libmicrohttpd, Debian
# libmicrohttpd-dev, HTTPS through its GnuTLS
pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
# herald passwd and herald-web's logins (passwd.c): argon2id, Debian
# libargon2-dev
pkg_check_modules(ARGON2 REQUIRED IMPORTED_TARGET libargon2)
# the SMTP transport's worker threads (transport_smtp_pool.c)
find_package(Threads REQUIRED)
set(HERALD_LIBRARIES PkgConfig::YAML PkgConfig::GNUTLS PkgConfig::ICU
  PkgConfig::SQLITE PkgConfig::PQ PkgConfig::CURL PkgConfig::MHD PkgConfig::ARGON2
  ${ETPAN_LIBRARY}
  Threads::Threads)

file(GLOB HERALD_SOURCES CONFIGURE_DEPENDS ${HERALD_ROOT}/src/*.c)
list(FILTER HERALD_SOURCES EXCLUDE REGEX "/src/herald(d|_[a-z]+|-web)?\\.c$")
