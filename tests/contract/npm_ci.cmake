# npm_ci.cmake: install the contract test's pinned npm tools into DIR, a copy
# of package.json and package-lock.json (contract.cmake puts it in the build
# directory). A CMake script, run by the CTest test contract.npm_ci:
#   cmake -DNPM=/usr/bin/npm -DDIR=build/contract-npm -P tests/contract/npm_ci.cmake
# `npm ci` runs only when the lock file changed since the last install, so a
# second `ctest` costs nothing. Without npm it fails loudly: CI installs it.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  return() # included by mistake (say, by a glob of *.cmake): this is a script, not a test list
endif()

if(NOT NPM OR NOT EXISTS "${NPM}")
  message(FATAL_ERROR
    "npm not found: the contract tests (Redocly lint, ajv validation of live responses) need "
    "Node.js and npm. Install them (Debian: apt-get install nodejs npm, or `make deps`) and "
    "re-run cmake.")
endif()
if(NOT DIR OR NOT EXISTS "${DIR}/package-lock.json")
  message(FATAL_ERROR "npm_ci.cmake: DIR must hold package.json and package-lock.json (got '${DIR}')")
endif()

file(SHA256 "${DIR}/package-lock.json" want)
set(stamp "${DIR}/node_modules/.jobd-contract-stamp")
if(EXISTS "${stamp}" AND EXISTS "${DIR}/node_modules/.bin/redocly")
  file(READ "${stamp}" have)
  if(have STREQUAL want)
    message(STATUS "contract npm tools are up to date in ${DIR}/node_modules")
    return()
  endif()
endif()

execute_process(
  COMMAND "${NPM}" ci --no-audit --no-fund
  WORKING_DIRECTORY "${DIR}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "npm ci failed (${rc}) in ${DIR}")
endif()
file(WRITE "${stamp}" "${want}")
