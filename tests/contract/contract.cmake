# Contract tests (label `contract`): the API contract openapi/openapi.yaml is
# linted with Redocly CLI, and real jobd responses are checked against it
# with ajv. Included by tests/CMakeLists.txt.
#
#   contract.npm_ci    fixture: `npm ci` of the pinned tools (package-lock.json)
#                      into <build>/contract-npm, skipped when already current
#   contract.lint      redocly lint (config: tests/contract/redocly.yaml)
#   contract.validate  exercise.py: every endpoint of a real jobd, success and
#                      error cases, recorded to <build>/contract-recorded.jsonl
#                      and checked by validate.mjs
#
# By hand: cd tests/contract && npm ci && npx redocly lint &&
#          JOBD_BIN=../../build/jobd python3 exercise.py
#
# Node.js and npm are required, not optional: without them these tests are
# still registered and fail, saying what to install.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
find_program(JOBD_NPM npm)
find_program(JOBD_NODE node)

set(JOBD_CONTRACT_DIR ${CMAKE_CURRENT_LIST_DIR})
set(JOBD_CONTRACT_NPM_DIR ${CMAKE_BINARY_DIR}/contract-npm)
set(JOBD_CONTRACT_ENV
    "REDOCLY_TELEMETRY=off"
    "REDOCLY_SUPPRESS_UPDATE_NOTICE=true"
    "CONTRACT_NODE_PREFIX=${JOBD_CONTRACT_NPM_DIR}"
    "PYTHONDONTWRITEBYTECODE=1")

# package.json and the lock file are copied at configure time (and again
# whenever they change: configure_file makes CMake watch them).
configure_file(${JOBD_CONTRACT_DIR}/package.json ${JOBD_CONTRACT_NPM_DIR}/package.json COPYONLY)
configure_file(${JOBD_CONTRACT_DIR}/package-lock.json ${JOBD_CONTRACT_NPM_DIR}/package-lock.json COPYONLY)

add_test(NAME contract.npm_ci
         COMMAND ${CMAKE_COMMAND} -DNPM=${JOBD_NPM} -DDIR=${JOBD_CONTRACT_NPM_DIR}
                 -P ${JOBD_CONTRACT_DIR}/npm_ci.cmake)
set_tests_properties(contract.npm_ci PROPERTIES
  FIXTURES_SETUP contract_npm
  LABELS contract
  TIMEOUT 600)

if(JOBD_NPM AND JOBD_NODE)
  add_test(NAME contract.lint
           COMMAND ${JOBD_NODE} ${JOBD_CONTRACT_NPM_DIR}/node_modules/@redocly/cli/bin/cli.js
                   lint --config ${JOBD_CONTRACT_DIR}/redocly.yaml
                   ${JOBD_CONTRACT_DIR}/../../openapi/openapi.yaml
           WORKING_DIRECTORY ${JOBD_CONTRACT_DIR})
  add_test(NAME contract.validate
           COMMAND ${Python3_EXECUTABLE} ${JOBD_CONTRACT_DIR}/exercise.py
                   --out ${CMAKE_BINARY_DIR}/contract-recorded.jsonl
           WORKING_DIRECTORY ${JOBD_CONTRACT_DIR})
  set_tests_properties(contract.validate PROPERTIES
    ENVIRONMENT "JOBD_BIN=$<TARGET_FILE:jobd-bin>;NODE=${JOBD_NODE};${JOBD_CONTRACT_ENV}")
  set_tests_properties(contract.lint PROPERTIES ENVIRONMENT "${JOBD_CONTRACT_ENV}")
else()
  message(WARNING "node or npm not found: the contract tests will fail until Node.js and npm "
                  "are installed (Debian: nodejs npm) and cmake is re-run")
  foreach(t lint validate)
    add_test(NAME contract.${t}
             COMMAND ${CMAKE_COMMAND} -DNPM=${JOBD_NPM} -P ${JOBD_CONTRACT_DIR}/npm_ci.cmake)
  endforeach()
endif()
set_tests_properties(contract.lint contract.validate PROPERTIES
  FIXTURES_REQUIRED contract_npm
  LABELS contract
  TIMEOUT 180)
