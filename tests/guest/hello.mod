hello module: a multiboot module for the test OS (tests/guest/multiboot.c checks
that a module named "hello" begins with "hello module").
