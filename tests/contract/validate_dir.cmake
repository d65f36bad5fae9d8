# Validate every recording in DIR with validate.mjs:
#   cmake -DNODE=node -DDIR=dir -DVALIDATE=validate.mjs -P validate_dir.cmake
file(GLOB recordings ${DIR}/*.jsonl)
if(NOT recordings)
  message(FATAL_ERROR "no recordings in ${DIR}: run the integration tests first")
endif()
execute_process(COMMAND ${NODE} ${VALIDATE} --quiet ${recordings} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "responses of the integration suite do not match openapi/openapi.yaml")
endif()
