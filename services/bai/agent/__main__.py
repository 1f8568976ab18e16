from bai.agent.main import main

raise SystemExit(main())
