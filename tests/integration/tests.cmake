# One line per integration test: tierfs_integration_test(NAME)
tierfs_integration_test(store_azure)
tierfs_integration_test(store_file)
tierfs_integration_test(store_s3)
