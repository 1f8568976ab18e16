from bai.storage.main import main

raise SystemExit(main())
