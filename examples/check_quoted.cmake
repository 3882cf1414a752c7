# Fails unless the example source appears verbatim in the document, so docs cannot drift.
file(READ ${EXAMPLE} example)
file(READ ${DOC} doc)
string(FIND "${doc}" "${example}" position)
if(position EQUAL -1)
  message(FATAL_ERROR "${DOC} does not quote ${EXAMPLE} verbatim; paste the current source")
endif()
