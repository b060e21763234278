# Fails the build when an ISA object file (cpp/src/kernels/<isa>/) has a dynamic initialiser.
# Those files are compiled with -mavx512f, -mamx-tile, ...; code that runs when the library is
# loaded (a namespace-scope object built by a function call, say) may use those instructions,
# and runs on every CPU, before the kernel table has checked what the CPU supports: an illegal
# instruction at `import cnnkit` on a CPU without that ISA. Constant-initialise such objects
# (constexpr, aggregates) or make them function-local statics.
#   cmake -DNM=nm -DOBJECTS="a.o;b.o" -P check_isa_objects.cmake
foreach(obj IN LISTS OBJECTS)
  execute_process(COMMAND "${NM}" "${obj}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_isa_objects: ${NM} failed on ${obj}")
  endif()
  if(symbols MATCHES "_GLOBAL__sub_I_")
    message(FATAL_ERROR "check_isa_objects: ${obj} has a dynamic initialiser (_GLOBAL__sub_I_): "
                        "code compiled with ISA flags would run at load time on every CPU")
  endif()
endforeach()
