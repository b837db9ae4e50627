from hallpass_gateway.cli import main

raise SystemExit(main())
