from bai.manager.main import main

raise SystemExit(main())
