# Programs for the object store layer: the contract test that the store
# integration tests run against each backend, and the benchmark driver of
# scripts/bench-store.
add_executable(store_contract store_contract.c)
target_link_libraries(store_contract PRIVATE tierfs_store)
add_executable(store_bench store_bench.c)
target_link_libraries(store_bench PRIVATE tierfs_store)
