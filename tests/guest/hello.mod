hello module: a multiboot module for the guest tests
